package valid

import (
	"fmt"
	"unicode/utf8"
)

// Limits on parallel steps (Dagu's parallel: one child run per item).
const (
	// MaxParallelItems bounds the items of one parallel step, written in
	// the file or read from a variable when the step runs: each is a
	// child run. It is Dagu's limit.
	MaxParallelItems = 1000
	// MaxParallelParamsShownBytes bounds the params of one item as the
	// parent's step state records them (the child run has them whole):
	// a step's state stays small with a thousand items.
	MaxParallelParamsShownBytes = 256
)

// ParallelItems: a parallel step has 1-1000 items.
func ParallelItems(n int) error {
	switch {
	case n == 0:
		return &Error{Rule: "a parallel step needs at least one item"}
	case n > MaxParallelItems:
		return &Error{Rule: fmt.Sprintf("%d items, more than the limit of %d per parallel step", n, MaxParallelItems)}
	}
	return nil
}

// ClipParallelParams cuts an item's params to MaxParallelParamsShownBytes
// (on a rune boundary, marking the cut), as a step state records them.
func ClipParallelParams(s string) string {
	if len(s) <= MaxParallelParamsShownBytes {
		return s
	}
	const mark = " …"
	cut := MaxParallelParamsShownBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
