package metrics

import (
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

// Raft's own timings. hashicorp/raft and raft-boltdb report through the
// process-wide go-metrics registry (github.com/hashicorp/go-metrics/compat,
// which is armon/go-metrics unless built with the hashicorpmetrics tag); a
// sink of our own takes the few keys an operator needs to see where a
// write waits and feeds them to Prometheus histograms. Every other key is
// dropped where it arrives, so nothing grows with what raft emits.
//
// go-metrics is global to the process, so these figures are the
// process's: one server per process, as daguha runs, makes them the
// server's. Tests that start several servers in one process see their
// sum.

// Label values of daguha_raft_timing_seconds{op}, by the go-metrics key
// each is taken from.
var raftTimingOps = map[string]string{
	"raft.commitTime":                    "commit",             // leader: entry written to its log until a quorum stored it
	"raft.leader.dispatchLog":            "leader_log_write",   // leader: writing new entries to its own log (fsync included)
	"raft.boltdb.storeLogs":              "log_store",          // any server: one batch into the bolt log store, fsync included
	"raft.rpc.appendEntries.storeLogs":   "follower_log_write", // follower: storing what an AppendEntries carried
	"raft.rpc.appendEntries":             "follower_append",    // follower: handling one AppendEntries, store included
	"raft.fsm.enqueue":                   "fsm_enqueue",        // committed entries waiting for the state machine's goroutine
	"raft.fsm.apply":                     "fsm_apply",          // one entry applied to the state machine
	"raft.fsm.applyBatch":                "fsm_apply_batch",    // one batch of entries applied to the state machine
	"raft.replication.appendEntries.rpc": "",                   // per peer: below
	"raft.replication.heartbeat":         "",                   // per peer: below
}

// Label values of daguha_raft_replication_seconds{kind}.
const (
	replicationAppend    = "append_entries"
	replicationHeartbeat = "heartbeat"
)

// raftTimings is the process's go-metrics sink and the Prometheus
// collectors it feeds.
type raftTimings struct {
	timing      *prometheus.HistogramVec
	replication *prometheus.HistogramVec
	entries     *prometheus.CounterVec

	mu      sync.Mutex
	contact map[string]time.Time // peer id -> last successful AppendEntries or heartbeat reply
}

var _ gometrics.MetricSink = (*raftTimings)(nil)

var (
	processRaftTimings     *raftTimings
	processRaftTimingsOnce sync.Once
)

// raftTimingBuckets: a log fsync on a local disk takes a fraction of a
// millisecond to tens of milliseconds; a slow follower seconds.
var raftTimingBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17) // 0.1 ms .. 6.5 s

// installRaftTimings makes the process's sink (once) and routes go-metrics
// to it.
func installRaftTimings() *raftTimings {
	processRaftTimingsOnce.Do(func() {
		t := newRaftTimings()
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableHostnameLabel = false
		conf.EnableServiceLabel = false
		conf.EnableRuntimeMetrics = false // the Go collector reports the runtime
		conf.EnableTypePrefix = false
		if _, err := gometrics.NewGlobal(conf, t); err == nil {
			processRaftTimings = t
		}
	})
	return processRaftTimings
}

func newRaftTimings() *raftTimings {
	t := &raftTimings{contact: map[string]time.Time{}}
	t.timing = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "timing_seconds",
		Help: "Raft's own timings on this server, by op: commit (leader: an entry dispatched until a quorum stored it), " +
			"leader_log_write (leader: writing new entries to its log, fsync included), log_store (a batch into the log store, fsync included), " +
			"follower_log_write and follower_append (follower: storing, and handling, an AppendEntries), fsm_enqueue (committed entries " +
			"waiting for the state machine), fsm_apply and fsm_apply_batch (applying an entry, a batch).",
		Buckets: raftTimingBuckets,
	}, []string{"op"})
	t.replication = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "replication_seconds",
		Help:    "Leader: round trip of a successful AppendEntries carrying entries (kind=append_entries) or a heartbeat (kind=heartbeat) to each follower, by peer id.",
		Buckets: raftTimingBuckets,
	}, []string{"peer", "kind"})
	t.entries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "replicated_entries_total",
		Help: "Leader: log entries sent to each follower in successful AppendEntries, by peer id.",
	}, []string{"peer"})
	for _, op := range raftTimingOps {
		if op != "" {
			t.timing.WithLabelValues(op)
		}
	}
	return t
}

func (t *raftTimings) Describe(ch chan<- *prometheus.Desc) {
	t.timing.Describe(ch)
	t.replication.Describe(ch)
	t.entries.Describe(ch)
}

func (t *raftTimings) Collect(ch chan<- prometheus.Metric) {
	t.timing.Collect(ch)
	t.replication.Collect(ch)
	t.entries.Collect(ch)
}

// lastContact is when the leader last had a successful reply from peer.
func (t *raftTimings) lastContact(peer string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.contact[peer]
	return at, ok
}

// keyName joins a go-metrics key with dots into buf, without allocating
// for the lookups below.
func keyName(buf []byte, key []string) []byte {
	for i, part := range key {
		if i > 0 {
			buf = append(buf, '.')
		}
		buf = append(buf, part...)
	}
	return buf
}

func peerOf(labels []gometrics.Label) string {
	for _, l := range labels {
		if l.Name == "peer_id" {
			return l.Value
		}
	}
	return ""
}

// AddSampleWithLabels takes the timings (go-metrics measures them in
// milliseconds).
func (t *raftTimings) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	var buf [64]byte
	name := keyName(buf[:0], key)
	op, ok := raftTimingOps[string(name)]
	if !ok {
		return
	}
	seconds := float64(val) / 1000
	if op != "" {
		t.timing.WithLabelValues(op).Observe(seconds)
		return
	}
	peer := peerOf(labels)
	if peer == "" {
		return
	}
	kind := replicationHeartbeat
	if string(name) == "raft.replication.appendEntries.rpc" {
		kind = replicationAppend
	}
	t.replication.WithLabelValues(peer, kind).Observe(seconds)
	t.mu.Lock()
	t.contact[peer] = time.Now()
	t.mu.Unlock()
}

func (t *raftTimings) AddSample(key []string, val float32) { t.AddSampleWithLabels(key, val, nil) }

// IncrCounterWithLabels takes the entries replicated to each follower.
func (t *raftTimings) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	var buf [64]byte
	if string(keyName(buf[:0], key)) != "raft.replication.appendEntries.logs" || val <= 0 {
		return
	}
	if peer := peerOf(labels); peer != "" {
		t.entries.WithLabelValues(peer).Add(float64(val))
	}
}

func (t *raftTimings) IncrCounter(key []string, val float32) { t.IncrCounterWithLabels(key, val, nil) }

// Gauges and emitted keys are not taken: what they say is read from Raft
// at scrape time (collectors.go).
func (t *raftTimings) SetGauge([]string, float32)                              {}
func (t *raftTimings) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}
func (t *raftTimings) EmitKey([]string, float32)                               {}
