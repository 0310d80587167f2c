package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/daguha/daguha/ops/wire"
)

// runPath is the path of a run, or of one of its parts (suffix).
func runPath(id, suffix string) string {
	return "/api/v2/dag-runs/" + url.PathEscape(id) + suffix
}

func dagPath(name string) string { return "/api/v2/dags/" + url.PathEscape(name) }

// Enqueue enqueues a run: of a stored DAG, of an inline DAG or of a DAG
// file (see wire.EnqueueRequest). Created is false when a run of that id
// already existed.
func (c *Client) Enqueue(ctx context.Context, req wire.EnqueueRequest) (wire.Enqueued, error) {
	var answer wire.Enqueued
	_, err := c.Do(ctx, http.MethodPost, "/api/v2/dag-runs", req, &answer)
	return answer, err
}

// EnqueueBatch enqueues up to wire.MaxEnqueueBatch runs in one request;
// the answer has each run's outcome in order.
func (c *Client) EnqueueBatch(ctx context.Context, runs []wire.EnqueueRequest) (wire.EnqueuedBatch, error) {
	var answer wire.EnqueuedBatch
	_, err := c.Do(ctx, http.MethodPost, "/api/v2/dag-runs", wire.EnqueueBatch{Runs: runs}, &answer)
	return answer, err
}

// Run reads a run's detail (a linearizable read).
func (c *Client) Run(ctx context.Context, id string) (wire.Run, error) {
	var run wire.Run
	_, err := c.Do(ctx, http.MethodGet, runPath(id, ""), nil, &run)
	return run, err
}

// WaitRun is a blocking query: it answers once the run's modify index
// passes index, or after wait (the server allows at most a minute). The
// client's Timeout does not cut it short: the call may take wait and 15
// seconds more.
func (c *Client) WaitRun(ctx context.Context, id string, index uint64, wait time.Duration) (wire.Run, error) {
	var run wire.Run
	path := runPath(id, fmt.Sprintf("?index=%d&wait=%s", index, wait))
	_, err := c.WithTimeout(wait+15*time.Second).Do(ctx, http.MethodGet, path, nil, &run)
	return run, err
}

// RunQuery filters and pages a list of runs; the zero value asks for the
// server's first page (100 runs) of every run.
type RunQuery struct {
	DagName, Status, WorkerID    string
	RootDagRunID, ParentDagRunID string
	// Limit is the page's size (0: the server's default).
	Limit int
	// After is the previous page's Next.
	After string
	// Stale reads this server's own state, which may lag the leader's.
	Stale bool
}

func (q RunQuery) encode() string {
	values := url.Values{}
	set := func(key, value string) {
		if value != "" {
			values.Set(key, value)
		}
	}
	set("dag_name", q.DagName)
	set("status", q.Status)
	set("worker_id", q.WorkerID)
	set("root_dag_run_id", q.RootDagRunID)
	set("parent_dag_run_id", q.ParentDagRunID)
	set("after", q.After)
	if q.Limit > 0 {
		values.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Stale {
		values.Set("stale", "true")
	}
	if len(values) == 0 {
		return ""
	}
	return "?" + values.Encode()
}

// Runs lists one page of runs, newest first.
func (c *Client) Runs(ctx context.Context, query RunQuery) (wire.RunList, error) {
	var list wire.RunList
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/dag-runs"+query.encode(), nil, &list)
	return list, err
}

// Cancel cancels a queued run at once, or asks the worker of a running
// one to stop it, with all its descendants.
func (c *Client) Cancel(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodPost, runPath(id, "/cancel"), nil, nil)
	return err
}

// Retry queues a finished run again under its id for a new attempt
// (daguha retry): from step and every step after it when step is set,
// else from the steps that did not succeed.
func (c *Client) Retry(ctx context.Context, id, step string) (wire.Retried, error) {
	var answer wire.Retried
	_, err := c.Do(ctx, http.MethodPost, runPath(id, "/retry"), wire.RetryRequest{Step: step}, &answer)
	return answer, err
}

// Dequeue ends a queued run cancelled, as Dagu's dequeue does; a run that
// is not queued is refused (409).
func (c *Client) Dequeue(ctx context.Context, id string) (wire.Dequeued, error) {
	var answer wire.Dequeued
	_, err := c.Do(ctx, http.MethodPost, runPath(id, "/dequeue"), nil, &answer)
	return answer, err
}

// Restart enqueues a new run with the DAG and params of an ended run;
// newID is the new run's id ("": the server makes one up).
func (c *Client) Restart(ctx context.Context, id, newID string) (wire.Restarted, error) {
	var answer wire.Restarted
	_, err := c.Do(ctx, http.MethodPost, runPath(id, "/restart"), wire.RestartRequest{DagRunID: newID}, &answer)
	return answer, err
}

// CancelRunning asks every running run of a DAG to stop and returns their
// ids.
func (c *Client) CancelRunning(ctx context.Context, dagName string) ([]string, error) {
	var answer wire.CancelledRuns
	_, err := c.Do(ctx, http.MethodPost, dagPath(dagName)+"/cancel-running", nil, &answer)
	return answer.DagRunIDs, err
}

// StepLog streams the full log of a step from the worker that ran it;
// attempt 0 is the run's latest. The caller closes the stream; ctx alone
// bounds it.
func (c *Client) StepLog(ctx context.Context, id, step string, attempt uint32) (io.ReadCloser, error) {
	path := runPath(id, "/steps/"+url.PathEscape(step)+"/log")
	if attempt > 0 {
		path += fmt.Sprintf("?attempt=%d", attempt)
	}
	body, _, err := c.stream(ctx, http.MethodGet, path)
	return body, err
}

// PushDags validates DAG files and stores them; it says what it did with
// each DAG.
func (c *Client) PushDags(ctx context.Context, files []wire.DagSource) ([]wire.DagOutcome, error) {
	var answer wire.DagPushed
	_, err := c.Do(ctx, http.MethodPost, "/api/v2/dags", wire.DagPush{Files: files}, &answer)
	return answer.Dags, err
}

// Dags lists the stored DAGs, by name.
func (c *Client) Dags(ctx context.Context) ([]wire.Dag, error) {
	var list wire.DagList
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/dags", nil, &list)
	return list.Dags, err
}

// Dag reads a stored DAG, with its YAML as pushed.
func (c *Client) Dag(ctx context.Context, name string) (wire.Dag, error) {
	var dag wire.Dag
	_, err := c.Do(ctx, http.MethodGet, dagPath(name), nil, &dag)
	return dag, err
}

// DeleteDag forgets a stored DAG (its runs are kept).
func (c *Client) DeleteDag(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, dagPath(name), nil, nil)
	return err
}

// Workers lists the workers as the leader sees them, or as this server
// does with stale.
func (c *Client) Workers(ctx context.Context, stale bool) (wire.Workers, error) {
	var workers wire.Workers
	_, err := c.Do(ctx, http.MethodGet, workersPath(stale), nil, &workers)
	return workers, err
}

// WorkersJSON is Workers as the API's JSON text, for printing it as it is.
func (c *Client) WorkersJSON(ctx context.Context, stale bool) ([]byte, error) {
	var raw json.RawMessage
	_, err := c.Do(ctx, http.MethodGet, workersPath(stale), nil, &raw)
	return raw, err
}

func workersPath(stale bool) string {
	if stale {
		return "/api/v2/workers?stale=true"
	}
	return "/api/v2/workers"
}

// Health asks whether the server knows a leader. A server that does not
// answers 503: the error is then an *Error and the Health still holds the
// server's answer.
func (c *Client) Health(ctx context.Context) (wire.Health, error) {
	var health wire.Health
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/health", nil, &health)
	decodeErrorBody(err, &health)
	return health, err
}

// Leader names the leader and its address. With no leader the error is
// an *Error (503) and the Leader holds the server's answer.
func (c *Client) Leader(ctx context.Context) (wire.Leader, error) {
	var leader wire.Leader
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/cluster/leader", nil, &leader)
	decodeErrorBody(err, &leader)
	return leader, err
}

// decodeErrorBody decodes the JSON body of an error answer into out, for
// the calls whose error answer has the shape of their answer.
func decodeErrorBody(err error, out any) {
	if apiErr, ok := err.(*Error); ok {
		_ = json.Unmarshal(apiErr.Body, out)
	}
}

// Peers is the Raft configuration as the server knows it.
func (c *Client) Peers(ctx context.Context) ([]wire.Peer, error) {
	var peers wire.Peers
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/cluster/peers", nil, &peers)
	return peers.Peers, err
}

// Members is every node the server's gossip knows of.
func (c *Client) Members(ctx context.Context) ([]wire.Member, error) {
	var members wire.Members
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/cluster/members", nil, &members)
	return members.Members, err
}

// Self describes the server: its role, what bootstrap decided, and how
// far its Raft log and state have come.
func (c *Client) Self(ctx context.Context) (wire.Self, error) {
	var self wire.Self
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/agent/self", nil, &self)
	return self, err
}

// RaftPeers lists the Raft configuration with each server's state and
// last log index.
func (c *Client) RaftPeers(ctx context.Context) ([]wire.PeerState, error) {
	var peers wire.RaftPeers
	_, err := c.Do(ctx, http.MethodGet, "/api/v2/operator/raft/peers", nil, &peers)
	return peers.Peers, err
}

// RemovePeer removes a (dead) server from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodPost, "/api/v2/operator/raft/remove-peer", wire.PeerRequest{ID: id}, nil)
	return err
}

// TransferLeadership hands leadership to the server id, or to the most
// up-to-date follower when id is "".
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodPost, "/api/v2/operator/raft/transfer-leadership", wire.PeerRequest{ID: id}, nil)
	return err
}

// SaveSnapshot streams a consistent archive of the cluster's state. The
// caller closes the stream; ctx alone bounds it.
func (c *Client) SaveSnapshot(ctx context.Context) (io.ReadCloser, error) {
	body, _, err := c.stream(ctx, http.MethodGet, "/api/v2/operator/snapshot")
	return body, err
}

// RestoreSnapshot replaces the cluster's state with the archive read from
// archive. ctx alone bounds it: an archive may take minutes to send and
// to apply.
func (c *Client) RestoreSnapshot(ctx context.Context, archive io.Reader) (wire.Restored, error) {
	var restored wire.Restored
	_, err := c.exchange(ctx, http.MethodPost, "/api/v2/operator/snapshot", archive, "application/octet-stream", &restored)
	return restored, err
}
