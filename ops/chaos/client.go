package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// chaosDag is the DAG the clients enqueue inline: two steps that each
// record their execution (run, attempt, fencing token, worker) in the
// worker's exec file and in their output.
func chaosDag(firstStepSleep string) *wire.InlineDag {
	return &wire.InlineDag{
		Name: "chaos",
		Steps: []wire.InlineStep{
			{Name: "first", Command: execLine + "; sleep " + firstStepSleep},
			{Name: "second", Command: execLine},
		},
	}
}

// cronDagName is the DAG with a schedule every second.
const cronDagName = "chaos-cron"

// cronDagFile fires every second; its one step records itself.
var cronDagFile = fmt.Sprintf(`name: %s
schedule: "* * * * * *"
steps:
  - name: tick
    command: %q
`, cronDagName, execLine)

// requestTimeout bounds one client call; past it the outcome is unknown.
const requestTimeout = 4 * time.Second

// ClientOptions shape the recording clients.
type ClientOptions struct {
	Clients int
	// MaxOps bounds each client's operations; Pause is the gap between
	// two of one client's operations.
	MaxOps int
	Pause  time.Duration
	Seed   uint64
	// FirstStepSleep is how long the first step of each run sleeps
	// (a shell duration, e.g. "0.2").
	FirstStepSleep string
	// ReuseWithin, when set, limits the run ids a client enqueues again,
	// reads and cancels to those it made within this long: a cluster
	// with a run retention forgets ended runs, and an id asked after past
	// it is a new run, which the model does not allow for.
	ReuseWithin time.Duration
}

// madeRun is a run id a client made, and when.
type madeRun struct {
	id string
	at time.Time
}

// Clients run concurrent recording clients against the servers.
type Clients struct {
	h    *Harness
	hist *History
	opts ClientOptions
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartClients starts the clients; Stop ends them and waits.
func StartClients(h *Harness, hist *History, opts ClientOptions) *Clients {
	c := &Clients{h: h, hist: hist, opts: opts, stop: make(chan struct{})}
	for i := 0; i < opts.Clients; i++ {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(i, rand.New(rand.NewPCG(opts.Seed, uint64(i)+1)))
		}()
	}
	return c
}

// Stop ends the clients and waits for their calls in flight.
func (c *Clients) Stop() {
	close(c.stop)
	c.wg.Wait()
}

func (c *Clients) run(client int, rng *rand.Rand) {
	var mine []madeRun
	for n := 0; n < c.opts.MaxOps; n++ {
		select {
		case <-c.stop:
			return
		case <-time.After(c.opts.Pause):
		}
		if c.opts.ReuseWithin > 0 {
			// Forget the ids made too long ago (mine is oldest first).
			cut := 0
			for cut < len(mine) && time.Since(mine[cut].at) > c.opts.ReuseWithin {
				cut++
			}
			mine = mine[cut:]
		}
		server := c.h.Servers[rng.IntN(len(c.h.Servers))]
		roll := rng.IntN(100)
		switch {
		case len(mine) == 0 || roll < 55:
			id := fmt.Sprintf("c%d-%d", client, n)
			mine = append(mine, madeRun{id: id, at: time.Now()})
			c.hist.Add(Enqueue(server, client, id, chaosDag(c.opts.FirstStepSleep)))
		case roll < 62:
			c.hist.Add(Enqueue(server, client, mine[rng.IntN(len(mine))].id, chaosDag(c.opts.FirstStepSleep)))
		case roll < 92:
			if op, ok := Read(server, client, mine[rng.IntN(len(mine))].id); ok {
				c.hist.Add(op)
			}
		default:
			if op, ok := Cancel(server, client, mine[rng.IntN(len(mine))].id); ok {
				c.hist.Add(op)
			}
		}
	}
}

// refused reports an error that proves the request never reached a
// server (nothing listened): such a call had no effect.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// Enqueue enqueues a run with a caller-chosen id and records the outcome.
// A refused connection is recorded as unknown too: harmless, and the
// history stays complete.
func Enqueue(s *Server, client int, id string, dag *wire.InlineDag) Op {
	return enqueue(s, client, wire.EnqueueRequest{DagRunID: id, Dag: dag})
}

// EnqueueByName enqueues a run of a stored DAG with a caller-chosen id and
// records the outcome as Enqueue does.
func EnqueueByName(s *Server, client int, id, dagName string) Op {
	return enqueue(s, client, wire.EnqueueRequest{DagRunID: id, DagName: dagName})
}

func enqueue(s *Server, client int, req wire.EnqueueRequest) Op {
	op := Op{Client: client, Kind: OpEnqueue, RunID: req.DagRunID, Server: s.Name, Call: time.Now().UnixNano()}
	var resp wire.Enqueued
	code, err := call(s, http.MethodPost, "/api/v2/dag-runs", req, &resp, requestTimeout)
	op.Return = time.Now().UnixNano()
	switch {
	case err != nil:
		op.Result, op.Return, op.Detail = ResultUnknown, Never, err.Error()
	case code == http.StatusCreated || code == http.StatusOK:
		op.Result, op.Detail = ResultOK, fmt.Sprintf("HTTP %d created=%v", code, resp.Created)
	case code == http.StatusConflict:
		op.Result = ResultConflict
	default:
		op.Result, op.Return, op.Detail = ResultUnknown, Never, fmt.Sprintf("HTTP %d", code)
	}
	return op
}

// Read reads a run's status (a linearizable read). A read that got no
// answer changed nothing and is not recorded (ok false).
func Read(s *Server, client int, id string) (Op, bool) {
	op := Op{Client: client, Kind: OpRead, RunID: id, Server: s.Name, Call: time.Now().UnixNano()}
	var run wire.Run
	code, err := call(s, http.MethodGet, "/api/v2/dag-runs/"+id, nil, &run, requestTimeout)
	op.Return = time.Now().UnixNano()
	switch {
	case err != nil:
		return op, false
	case code == http.StatusOK:
		op.Result = run.Status
	case code == http.StatusNotFound:
		op.Result = ResultNotFound
	default:
		return op, false
	}
	return op, true
}

// Cancel cancels a run and records the outcome.
func Cancel(s *Server, client int, id string) (Op, bool) {
	op := Op{Client: client, Kind: OpCancel, RunID: id, Server: s.Name, Call: time.Now().UnixNano()}
	code, err := call(s, http.MethodPost, "/api/v2/dag-runs/"+id+"/cancel", nil, nil, requestTimeout)
	op.Return = time.Now().UnixNano()
	switch {
	case err != nil && refused(err):
		return op, false
	case err != nil:
		op.Result, op.Return, op.Detail = ResultUnknown, Never, err.Error()
	case code == http.StatusOK:
		op.Result = ResultOK
	case code == http.StatusNotFound:
		op.Result = ResultNotFound
	case code == http.StatusConflict:
		op.Result = ResultFinished
	default:
		op.Result, op.Return, op.Detail = ResultUnknown, Never, fmt.Sprintf("HTTP %d", code)
	}
	return op, true
}

// PushCronDag stores the DAG with a schedule every second.
func PushCronDag(s *Server) error {
	_, err := s.API().WithTimeout(30*time.Second).PushDags(context.Background(), []wire.DagSource{{Name: "cron.yaml", Content: cronDagFile}})
	if err != nil {
		return fmt.Errorf("push %s: %w", cronDagName, err)
	}
	return nil
}

// DeleteCronDag removes the DAG with a schedule, so no slot fires while
// the checkers wait for every run to end.
func DeleteCronDag(s *Server) error {
	err := s.API().WithTimeout(30*time.Second).DeleteDag(context.Background(), cronDagName)
	if err != nil && client.StatusCode(err) != http.StatusNotFound {
		return fmt.Errorf("delete %s: %w", cronDagName, err)
	}
	return nil
}
