package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault kinds the nemesis injects.
const (
	KillLeader      = "kill-leader"
	KillFollower    = "kill-follower"
	KillWorker      = "kill-worker"
	PauseServer     = "pause-server"
	PartitionLeader = "partition-leader"
	PartitionWorker = "partition-worker"
	OneWay          = "one-way-partition"
	KillAllServers  = "kill-all-servers"
	DiskFull        = "disk-full"
)

// AllFaults are the kinds Random picks from.
var AllFaults = []string{KillLeader, KillFollower, KillWorker, PauseServer, PartitionLeader, PartitionWorker, OneWay, KillAllServers, DiskFull}

// Fault is one entry of the nemesis schedule.
type Fault struct {
	At     time.Duration `json:"at"`
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	Hold   time.Duration `json:"hold"`
	Note   string        `json:"note,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("+%s %s %s for %s", f.At.Round(100*time.Millisecond), f.Kind, f.Target, f.Hold.Round(100*time.Millisecond))
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

// Nemesis injects faults into a harness, choosing targets and durations
// from a seeded generator, and records what it did.
type Nemesis struct {
	h     *Harness
	t     testing.TB
	rng   *rand.Rand
	start time.Time

	mu       sync.Mutex
	schedule []Fault
}

// NewNemesis returns a nemesis whose choices follow seed.
func NewNemesis(t testing.TB, h *Harness, seed uint64) *Nemesis {
	return &Nemesis{h: h, t: t, rng: rand.New(rand.NewPCG(seed, 0x6e656d65736973)), start: time.Now()}
}

// Schedule returns the faults injected so far.
func (n *Nemesis) Schedule() []Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Fault(nil), n.schedule...)
}

// Pick chooses a fault kind at random.
func (n *Nemesis) Pick() string {
	kinds := AllFaults
	if !n.h.hasDisk() {
		kinds = kinds[:len(kinds)-1]
	}
	return kinds[n.rng.IntN(len(kinds))]
}

// hold returns a duration in [min, max).
func (n *Nemesis) hold(min, max time.Duration) time.Duration {
	return min + time.Duration(n.rng.Int64N(int64(max-min)))
}

func (h *Harness) hasDisk() bool {
	for _, s := range h.Servers {
		if s.HasDisk() {
			return true
		}
	}
	return false
}

// Inject runs one fault of kind to its end: inject, hold, heal, and wait
// until the cluster has one leader again with every process running.
func (n *Nemesis) Inject(kind string) Fault {
	n.t.Helper()
	h := n.h
	leader := h.WaitLeader(90 * time.Second)
	fault := Fault{At: time.Since(n.start), Kind: kind}
	var followers []*Server
	for _, s := range h.Servers {
		if s != leader {
			followers = append(followers, s)
		}
	}
	check := func(err error) {
		if err != nil {
			n.t.Fatalf("nemesis %s: %v", kind, err)
		}
	}
	switch kind {
	case KillLeader, KillFollower:
		target := leader
		if kind == KillFollower {
			target = followers[n.rng.IntN(len(followers))]
		}
		fault.Target, fault.Hold = target.Name, n.hold(time.Second, 6*time.Second)
		target.Kill()
		time.Sleep(fault.Hold)
		check(target.Start())
	case KillWorker:
		w := h.Workers[n.rng.IntN(len(h.Workers))]
		fault.Target, fault.Hold = w.ID, n.hold(time.Second, 10*time.Second)
		w.Kill()
		time.Sleep(fault.Hold)
		check(w.Start())
	case PauseServer:
		target := h.Servers[n.rng.IntN(len(h.Servers))]
		fault.Target, fault.Hold = target.Name, n.hold(2*time.Second, 8*time.Second)
		target.Pause()
		time.Sleep(fault.Hold)
		target.Resume()
	case PartitionLeader:
		fault.Target, fault.Hold = leader.Name, n.hold(3*time.Second, 10*time.Second)
		check(h.Net.Isolate(leader.Node, h.ServerNodes(leader)...))
		time.Sleep(fault.Hold)
		check(h.Net.Heal())
	case PartitionWorker:
		w := h.Workers[n.rng.IntN(len(h.Workers))]
		// Longer than the lease (5 s) and the offline threshold (6 s):
		// the worker's runs are always taken back while it is away.
		fault.Target, fault.Hold = w.ID, n.hold(7*time.Second, 12*time.Second)
		check(h.Net.Isolate(w.Node, h.ServerNodes(nil)...))
		time.Sleep(fault.Hold)
		check(h.Net.Heal())
	case OneWay:
		// A server hears nobody but is heard by all: the leader stops
		// getting acknowledgements, a follower stops getting entries.
		target := h.Servers[n.rng.IntN(len(h.Servers))]
		fault.Target, fault.Hold = target.Name+" deaf to the other servers", n.hold(3*time.Second, 10*time.Second)
		for _, other := range h.ServerNodes(target) {
			check(h.Net.Block(other, target.Node))
		}
		time.Sleep(fault.Hold)
		check(h.Net.Heal())
	case KillAllServers:
		fault.Target, fault.Hold = "every server", n.hold(time.Second, 4*time.Second)
		for _, s := range h.Servers {
			s.Kill()
		}
		time.Sleep(fault.Hold)
		for _, s := range h.Servers {
			check(s.Start())
		}
	case DiskFull:
		var target *Server
		for _, s := range h.Servers {
			if s.HasDisk() {
				target = s
			}
		}
		fault.Target, fault.Hold = target.Name, n.hold(3*time.Second, 10*time.Second)
		check(target.FillDisk())
		time.Sleep(fault.Hold)
		check(target.FreeDisk())
	default:
		n.t.Fatalf("nemesis: no fault %q", kind)
	}
	// Whatever died of the fault (a server that could not write its
	// log) is started again, and said so.
	var restarted []string
	for _, s := range h.Servers {
		if !s.Running() {
			restarted = append(restarted, s.Name)
			check(s.Start())
		}
	}
	for _, w := range h.Workers {
		if !w.Running() {
			restarted = append(restarted, w.ID)
			check(w.Start())
		}
	}
	if len(restarted) > 0 {
		fault.Note = "exited during the fault, restarted: " + strings.Join(restarted, ", ")
	}
	n.mu.Lock()
	n.schedule = append(n.schedule, fault)
	n.mu.Unlock()
	n.t.Logf("fault %s", fault)
	h.WaitLeader(90 * time.Second)
	return fault
}

// Quiet waits a random while between faults.
func (n *Nemesis) Quiet(min, max time.Duration) {
	time.Sleep(n.hold(min, max))
}
