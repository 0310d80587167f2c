package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/fsm"
)

// Roles a gossip member can have. Servers and workers share one pool.
const (
	RoleServer = "server"
	RoleWorker = "worker"
)

// Member states as this server last heard them through gossip.
const (
	MemberAlive  = "alive"
	MemberFailed = "failed"
	MemberLeft   = "left"
)

// metaVersion is bumped when the meta layout changes incompatibly.
const metaVersion = 1

// Meta is what every member says about itself in gossip. It must fit in
// memberlist's 512-byte meta limit, hence the short JSON keys.
type Meta struct {
	Version  int    `json:"v"`
	Role     string `json:"r"`
	RaftAddr string `json:"ra,omitempty"`
	GRPCAddr string `json:"ga,omitempty"`
	HTTPAddr string `json:"ha,omitempty"`
	Expect   int    `json:"e,omitempty"`
	// SigningKeys were the fingerprints of a server's lease signing keys:
	// anyone with the gossip key could guess weak keys from them offline,
	// and a fake member could make servers refuse to start. Servers now
	// compare keys over RaftState only (keys.go); this is still decoded,
	// and never trusted, so metas of older servers read harmlessly. Only
	// the daguha_trust_off build gossips and reads it.
	SigningKeys []string `json:"sk,omitempty"`
	// Zone is a server's schedule zone (Config.ScheduleZone).
	Zone string `json:"tz,omitempty"`
	// Labels are a worker's labels, when they fit in the meta.
	Labels map[string]string `json:"lb,omitempty"`
	// Leaving is set just before a graceful leave: memberlist reports a
	// left node and a failed one alike, so the intent travels in the meta.
	Leaving bool `json:"l,omitempty"`
	// BuildVersion is the daguha version the member runs
	// (buildinfo.Version, cut to MaxVersionLen), StateSchema the
	// replicated state's schema it reads (fsm.SchemaVersion) and
	// WireProtocol the protocol it speaks (buildinfo.ProtocolVersion).
	// Members built before 0.1.0 send none of them: see Versions.
	BuildVersion string `json:"bv,omitempty"`
	StateSchema  int    `json:"ss,omitempty"`
	WireProtocol int    `json:"wp,omitempty"`
}

// MaxVersionLen bounds the version string a member advertises, so that a
// long stamped version cannot push the meta past memberlist's limit.
const MaxVersionLen = 64

// BeforeFirstRelease is how a member that advertises no version is shown:
// builds before 0.1.0 did not put one in gossip.
const BeforeFirstRelease = "before 0.1.0"

// Versions is what a member runs, as its gossip meta says.
type Versions struct {
	// Version is the daguha version, BeforeFirstRelease for a member
	// that advertised none.
	Version      string `json:"version"`
	StateSchema  int    `json:"state_schema"`
	WireProtocol int    `json:"wire_protocol"`
}

// String is how messages name a member's versions.
func (v Versions) String() string {
	return fmt.Sprintf("daguha %s (state schema %d, wire protocol %d)", v.Version, v.StateSchema, v.WireProtocol)
}

// Versions returns what the meta says its member runs.
func (m Meta) Versions() Versions {
	if m.BuildVersion == "" {
		return Versions{Version: BeforeFirstRelease, StateSchema: m.StateSchema, WireProtocol: m.WireProtocol}
	}
	return Versions{Version: m.BuildVersion, StateSchema: m.StateSchema, WireProtocol: m.WireProtocol}
}

// ownVersions fills in the versions of this binary.
func ownVersions(meta Meta) Meta {
	meta.BuildVersion = advertisedVersion(buildinfo.Version())
	meta.StateSchema = fsm.SchemaVersion
	meta.WireProtocol = buildinfo.ProtocolVersion
	return meta
}

// advertisedVersion is a version string as gossip carries it: cut to
// MaxVersionLen.
func advertisedVersion(v string) string {
	if len(v) > MaxVersionLen {
		return v[:MaxVersionLen]
	}
	return v
}

// LocalVersions is what this binary would advertise.
func LocalVersions() Versions { return ownVersions(Meta{}).Versions() }

// Member is one node of the gossip pool.
type Member struct {
	Name   string    `json:"name"`
	Addr   string    `json:"addr"`
	Status string    `json:"status"`
	Meta   Meta      `json:"meta"`
	Since  time.Time `json:"since"`
}

// members tracks every node gossip has told us about, including the ones
// that failed or left, which memberlist itself forgets.
type members struct {
	mu          sync.Mutex
	byName      map[string]Member
	subscribers []chan struct{}
	now         func() time.Time
	// onChange, if set, hears every change, outside the lock.
	onChange func(Member)
}

func newMembers(now func() time.Time) *members {
	return &members{byName: map[string]Member{}, now: now}
}

// subscribe returns a channel that receives (coalesced) whenever the
// member table changes; the subscriber then reads the whole table.
func (m *members) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subscribers = append(m.subscribers, ch)
	m.mu.Unlock()
	return ch
}

func (m *members) set(node *memberlist.Node, status string) {
	var meta Meta
	if err := json.Unmarshal(node.Meta, &meta); err != nil {
		meta = Meta{}
	}
	member := Member{
		Name:   node.Name,
		Addr:   net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port))),
		Status: status,
		Meta:   meta,
		Since:  m.now(),
	}
	m.mu.Lock()
	m.byName[node.Name] = member
	for _, ch := range m.subscribers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	onChange := m.onChange
	m.mu.Unlock()
	if onChange != nil {
		onChange(member)
	}
}

// NotifyJoin, NotifyLeave and NotifyUpdate implement memberlist.EventDelegate.
func (m *members) NotifyJoin(node *memberlist.Node) { m.set(node, MemberAlive) }
func (m *members) NotifyUpdate(node *memberlist.Node) {
	m.set(node, MemberAlive)
}
func (m *members) NotifyLeave(node *memberlist.Node) {
	var meta Meta
	if err := json.Unmarshal(node.Meta, &meta); err == nil && meta.Leaving {
		m.set(node, MemberLeft)
		return
	}
	m.set(node, MemberFailed)
}

// list returns the members in name order, optionally only one role.
func (m *members) list(role string) []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.byName))
	for _, member := range m.byName {
		if role == "" || member.Meta.Role == role {
			out = append(out, member)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// failedServerAddrs returns the gossip addresses of the servers other
// than self that this node last heard of as failed (not left), from its
// own table: memberlist's node records are only safe to read under its
// lock, so the addresses were copied when memberlist reported the change.
func (m *members) failedServerAddrs(self string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var addrs []string
	for name, member := range m.byName {
		if name != self && member.Meta.Role == RoleServer && member.Status == MemberFailed {
			addrs = append(addrs, member.Addr)
		}
	}
	sort.Strings(addrs)
	return addrs
}

func (m *members) get(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	member, ok := m.byName[name]
	return member, ok
}

// metaDelegate answers memberlist's questions about this node.
type metaDelegate struct {
	mu   sync.Mutex
	meta Meta
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	encoded, err := json.Marshal(d.meta)
	if err != nil || len(encoded) > limit {
		return nil
	}
	return encoded
}

func (d *metaDelegate) setLeaving() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.meta.Leaving = true
}
func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// httpAddr is the HTTP address this server advertises.
func (s *Server) httpAddr() string {
	return net.JoinHostPort(s.config.AdvertiseAddr, strconv.Itoa(s.config.HTTPPort))
}

// serverMeta is what a server says about itself in gossip.
func serverMeta(config Config, raftAddr string) Meta {
	meta := ownVersions(Meta{
		Version:  metaVersion,
		Role:     RoleServer,
		RaftAddr: raftAddr,
		GRPCAddr: net.JoinHostPort(config.AdvertiseAddr, strconv.Itoa(config.GRPCPort)),
		HTTPAddr: net.JoinHostPort(config.AdvertiseAddr, strconv.Itoa(config.HTTPPort)),
		Expect:   config.BootstrapExpect,
		Zone:     config.ScheduleZone,
	})
	if !identity.Enforced {
		meta.SigningKeys = config.SigningKeyIDs
	}
	return meta
}

func (s *Server) startGossip() error {
	s.meta = &metaDelegate{meta: serverMeta(s.config, string(s.raftAddr))}
	if encoded := s.meta.NodeMeta(memberlist.MetaMaxSize); encoded == nil {
		return fmt.Errorf("gossip meta does not fit in %d bytes", memberlist.MetaMaxSize)
	}
	list, err := newMemberlist(gossipSettings{
		name: s.config.NodeName, bind: s.config.BindAddr, advertise: s.config.AdvertiseAddr,
		port: s.config.GossipPort, timings: s.config.GossipTimings, keys: s.config.GossipKeys,
	}, s.meta, s.members, s.logger)
	if err != nil {
		return err
	}
	s.gossip = list
	if len(s.config.Join) > 0 {
		s.goFunc(func() {
			joinLoop(list, s.config.NodeName, s.members, s.config.Join, s.config.JoinRetryInterval, s.shutdownCh, s.logger)
		})
	}
	return nil
}

type gossipSettings struct {
	name, bind, advertise string
	port                  int
	timings               GossipTimings
	// keys encrypt the pool: the first encrypts, all decrypt.
	keys [][]byte
}

func newMemberlist(settings gossipSettings, meta *metaDelegate, events *members, logger *slog.Logger) (*memberlist.Memberlist, error) {
	var conf *memberlist.Config
	if settings.timings == GossipLocal {
		conf = memberlist.DefaultLocalConfig()
	} else {
		conf = memberlist.DefaultLANConfig()
	}
	conf.Name = settings.name
	conf.BindAddr = settings.bind
	conf.BindPort = settings.port
	conf.AdvertiseAddr = settings.advertise
	conf.AdvertisePort = settings.port
	conf.Delegate = meta
	conf.Events = events
	conf.Logger = nil
	conf.LogOutput = &levelPrefixWriter{logger: logger.With("component", "gossip")}
	if len(settings.keys) > 0 {
		keyring, err := memberlist.NewKeyring(settings.keys, settings.keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip encryption keys: %w", err)
		}
		conf.Keyring = keyring
		conf.GossipVerifyIncoming, conf.GossipVerifyOutgoing = true, true
	}
	list, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", settings.bind, settings.port, err)
	}
	return list, nil
}

// joinLoop tries the seeds until one of them answers, then keeps the node
// in the pool: whenever a server this node knew is failed in its view, it
// joins the seeds and the failed servers' last addresses again.
// memberlist alone does not heal that split: a node marked dead is only
// gossiped to for a short while, and a restarted server joins its own
// seeds, not the workers. Without this, workers whose servers were all
// killed and restarted (or cut off for longer than that while) would
// never hear of them again.
func joinLoop(list *memberlist.Memberlist, self string, table *members, seeds []string, interval time.Duration, shutdownCh <-chan struct{}, logger *slog.Logger) {
	joined, failures, lastTargets := false, 0, ""
	for {
		targets := seeds
		if joined {
			targets = nil
			if failed := table.failedServerAddrs(self); len(failed) > 0 {
				targets = appendMissing(append([]string(nil), seeds...), failed)
			}
		}
		if len(targets) > 0 {
			n, err := list.Join(targets)
			key := strings.Join(targets, ",")
			switch {
			case n > 0 && !joined:
				logger.Info("joined gossip pool", "seeds", seeds, "reached", n)
			case n > 0 && key != lastTargets:
				logger.Info("joined gossip seeds again: a server had failed in this node's view", "targets", targets, "reached", n)
			case n == 0 && (failures == 0 || failures%30 == 0):
				logger.Warn("no gossip seed answered; retrying", "seeds", targets, "attempt", failures+1, "error", err)
			}
			if n > 0 {
				joined, failures, lastTargets = true, 0, key
			} else {
				failures++
			}
		}
		select {
		case <-time.After(interval):
		case <-shutdownCh:
			return
		}
	}
}

// appendMissing appends to list the entries of more it does not hold.
func appendMissing(list, more []string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}

// leaveGossip tells the pool this is a graceful leave (so the leader
// removes this server from Raft rather than waiting for it to return),
// then leaves.
func (s *Server) leaveGossip(timeout time.Duration) error {
	s.meta.setLeaving()
	if err := s.gossip.UpdateNode(timeout); err != nil {
		s.logger.Warn("announce leave in gossip", "error", err)
	}
	return s.gossip.Leave(timeout)
}

// Members returns the gossip pool as this server sees it.
func (s *Server) Members() []Member { return s.members.list("") }
