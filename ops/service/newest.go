package service

import (
	"container/heap"
	"sort"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// newest keeps the first limit+1 runs in list order (newest first) of the
// runs it is offered, in a heap whose top is the last of them: a page of a
// list of a million runs costs a pass over them and log(limit) per run,
// not a sort of all of them (and the memory of every match).
type newest struct {
	limit int
	runs  []*daguhav1.Run
}

func (n *newest) Len() int           { return len(n.runs) }
func (n *newest) Less(i, j int) bool { return listedBefore(n.runs[j], n.runs[i]) }
func (n *newest) Swap(i, j int)      { n.runs[i], n.runs[j] = n.runs[j], n.runs[i] }
func (n *newest) Push(x any)         { n.runs = append(n.runs, x.(*daguhav1.Run)) }
func (n *newest) Pop() any {
	last := n.runs[len(n.runs)-1]
	n.runs = n.runs[:len(n.runs)-1]
	return last
}

// offer considers one run.
func (n *newest) offer(run *daguhav1.Run) {
	if len(n.runs) <= n.limit {
		heap.Push(n, run)
		return
	}
	// Full: the run goes in only if it comes before the last kept.
	if listedBefore(run, n.runs[0]) {
		n.runs[0] = run
		heap.Fix(n, 0)
	}
}

// page returns the kept runs in list order, at most limit, and whether
// more matched.
func (n *newest) page() ([]*daguhav1.Run, bool) {
	out := append([]*daguhav1.Run(nil), n.runs...)
	sort.Slice(out, func(i, j int) bool { return listedBefore(out[i], out[j]) })
	if len(out) > n.limit {
		return out[:n.limit], true
	}
	return out, false
}
