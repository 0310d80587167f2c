package service

import (
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// chunks is a worker's log stream, its parts as given.
type chunks struct {
	grpc.ServerStreamingClient[daguhav1.StepLogChunk]
	parts []string
}

func (c *chunks) Recv() (*daguhav1.StepLogChunk, error) {
	if len(c.parts) == 0 {
		return nil, io.EOF
	}
	part := c.parts[0]
	c.parts = c.parts[1:]
	return &daguhav1.StepLogChunk{Data: []byte(part)}, nil
}

// An offset and a limit cut the log wherever the worker's chunks end:
// the same bytes as cutting the whole log at once.
func TestStepLogOffsetAndLimitCutAcrossChunks(t *testing.T) {
	parts := []string{"abc", "defg", "", "hij", "k"}
	whole := strings.Join(parts, "")
	for _, c := range []struct {
		skip, left int64
	}{
		{0, -1}, {2, -1}, {3, -1}, {5, 3}, {7, 1}, {0, 4}, {10, -1}, {11, -1}, {40, -1}, {1, 100},
	} {
		rest := append([]string(nil), parts[1:]...)
		log := &StepLog{first: &daguhav1.StepLogChunk{Data: []byte(parts[0])}, stream: &chunks{parts: rest}, skip: c.skip, left: c.left}
		var got strings.Builder
		for i := 0; i < 20; i++ {
			data, err := log.Next()
			if err != nil {
				break
			}
			got.Write(data)
		}
		want := whole[min(c.skip, int64(len(whole))):]
		if c.left >= 0 && int64(len(want)) > c.left {
			want = want[:c.left]
		}
		if got.String() != want {
			t.Errorf("offset %d limit %d: %q, want %q", c.skip, c.left, got.String(), want)
		}
	}
}
