package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/itchyny/gojq"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindJQ is Dagu's jq executor: the step runs a jq query on JSON.
const kindJQ = "jq"

// jqSettings are the jq executor's settings (dagfile/executors.go).
type jqSettings struct {
	Query string `json:"query"`
	Raw   bool   `json:"raw"`
	Input string `json:"input"`
}

// jqExecutor runs the step's query (its command, or the query setting)
// with gojq on its input (its script, or the input setting: JSON text,
// variables expanded as values). Each result is printed as Dagu prints
// it: indented JSON, or with raw a string's text without its quotes. A
// query that does not parse, input that is not JSON, or an error of the
// query fails the step with it.
type jqExecutor struct{}

func init() { registerExecutor(kindJQ, jqExecutor{}) }

func (jqExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	spec := t.spec()
	var s jqSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return executorResult(t, nil, fmt.Sprintf("jq settings: %v", err))
		}
	}
	if c := spec.GetCommand(); c != "" {
		s.Query = c
	}
	if sc := spec.GetScript(); sc != "" {
		s.Input = sc
	}
	if strings.TrimSpace(s.Query) == "" {
		return executorResult(t, nil, "jq step needs a query: its command, or the query setting")
	}
	q, err := gojq.Parse(s.Query)
	if err != nil {
		return executorResult(t, nil, fmt.Sprintf("jq query: %v", err))
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return executorResult(t, nil, fmt.Sprintf("jq query: %v", err))
	}
	r := t.scope()
	text := expandVars(s.Input, r)
	if strings.TrimSpace(text) == "" {
		text = "null"
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var out bytes.Buffer
	for {
		var in any
		if err := dec.Decode(&in); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return executorResult(t, out.Bytes(), fmt.Sprintf("jq input is not JSON: %v", err))
		}
		in = normalizeJSON(in)
		iter := code.RunWithContext(ctx, in)
		for {
			v, ok := iter.Next()
			if !ok {
				break
			}
			if err, ok := v.(error); ok {
				if ctx.Err() != nil {
					return stoppedState(ctx)
				}
				return executorResult(t, out.Bytes(), fmt.Sprintf("jq: %v", err))
			}
			if str, ok := v.(string); ok && s.Raw {
				out.WriteString(str)
				out.WriteByte('\n')
				continue
			}
			enc, err := json.MarshalIndent(v, "", "    ")
			if err != nil {
				return executorResult(t, out.Bytes(), fmt.Sprintf("jq result: %v", err))
			}
			out.Write(enc)
			out.WriteByte('\n')
		}
	}
	return executorResult(t, out.Bytes(), "")
}

// normalizeJSON turns json.Number into the int or float64 gojq takes.
func normalizeJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalizeJSON(e)
		}
	}
	return v
}
