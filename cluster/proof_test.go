package cluster

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster/identity"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

var (
	gossipServer2 = Member{Name: "server2", Status: MemberAlive, Meta: Meta{Role: RoleServer, GRPCAddr: "10.0.0.2:50055", RaftAddr: "10.0.0.2:8300", HTTPAddr: "10.0.0.2:8080"}}
	challengeA    = bytes.Repeat([]byte{0xa}, challengeBytes)
	challengeB    = bytes.Repeat([]byte{0xb}, challengeBytes)
)

// honestAnswer is what server2 answers when asked with challenge, keyed
// and proven with token when there is one.
func honestAnswer(token string, challenge []byte) *daguhav1.RaftStateResponse {
	state := &daguhav1.RaftStateResponse{NodeId: "server2", RaftAddr: "10.0.0.2:8300", HttpAddr: "10.0.0.2:8080", BootstrapExpect: 3, SigningKeyIds: []string{"k1"}}
	if token != "" {
		state.SigningKeyIds = keyedFingerprints(token, challenge, state.SigningKeyIds)
		state.Proof = raftStateProof(token, challenge, state)
	}
	return state
}

func certificateOf(id identity.Identity) *x509.Certificate {
	return &x509.Certificate{URIs: []*url.URL{id.URI()}}
}

func TestAnAnswerProvesTheServerGossipNamesOrIsRefused(t *testing.T) {
	open := proofRules{}
	tokens := proofRules{tokens: []string{"token-new", "token-old"}}
	tls := proofRules{tls: true}
	server2 := certificateOf(identity.Identity{Role: identity.RoleServer, Name: "server2"})
	cases := []struct {
		name   string
		rules  proofRules
		answer ServerAnswer
		// refusal is a part of the reason; "" when the answer proves it.
		refusal   string
		wantToken string
	}{
		{"open cluster: the server gossip names answers", open, ServerAnswer{State: honestAnswer("", challengeA)}, "", ""},
		{"open cluster: another server answers at the advertised address", open,
			ServerAnswer{State: &daguhav1.RaftStateResponse{NodeId: "server1", RaftAddr: "10.0.0.2:8300"}}, `answers as "server1", not "server2"`, ""},
		{"open cluster: the answer gives another Raft address", open,
			ServerAnswer{State: &daguhav1.RaftStateResponse{NodeId: "server2", RaftAddr: "10.0.0.1:8300"}}, `Raft address is "10.0.0.1:8300"`, ""},
		{"open cluster: the answer gives another HTTP address (gossip was told a lie about where to relay API calls)", open,
			ServerAnswer{State: &daguhav1.RaftStateResponse{NodeId: "server2", RaftAddr: "10.0.0.2:8300", HttpAddr: "10.6.6.6:8080"}}, `HTTP address is "10.6.6.6:8080"`, ""},
		{"no answer at all", open, ServerAnswer{}, "empty answer", ""},

		{"token: proven with the sending token", tokens, ServerAnswer{State: honestAnswer("token-new", challengeA)}, "", "token-new"},
		{"token: proven with the other accepted token (rotation)", tokens, ServerAnswer{State: honestAnswer("token-old", challengeA)}, "", "token-old"},
		{"token: no proof", tokens, ServerAnswer{State: honestAnswer("", challengeA)}, "no proof of the cluster token", ""},
		{"token: proof with a token this server does not accept", tokens, ServerAnswer{State: honestAnswer("guessed", challengeA)}, "does not verify", ""},
		{"token: an answer replayed from another challenge", tokens, ServerAnswer{State: honestAnswer("token-new", challengeB)}, "does not verify", ""},
		{"token: a proven answer altered on the way", tokens, ServerAnswer{State: func() *daguhav1.RaftStateResponse {
			state := honestAnswer("token-new", challengeA)
			state.HasState = true
			return state
		}()}, "does not verify", ""},
		{"token: a proven answer with its HTTP address altered on the way", tokens, ServerAnswer{State: func() *daguhav1.RaftStateResponse {
			state := honestAnswer("token-new", challengeA)
			state.HttpAddr = "10.6.6.6:8080"
			return state
		}()}, "HTTP address", ""},

		{"TLS: the server's own certificate", tls, ServerAnswer{State: honestAnswer("", challengeA), Certificate: server2}, "", ""},
		{"TLS: no verified certificate", tls, ServerAnswer{State: honestAnswer("", challengeA)}, "no certificate", ""},
		{"TLS: a certificate made before roles", tls, ServerAnswer{State: honestAnswer("", challengeA), Certificate: &x509.Certificate{}}, "daguha tls cert create", ""},
		{"TLS: a worker's certificate with the server's name", tls, ServerAnswer{State: honestAnswer("", challengeA),
			Certificate: certificateOf(identity.Identity{Role: identity.RoleWorker, Name: "server2"})}, "not a server's", ""},
		{"TLS: another server's certificate", tls, ServerAnswer{State: honestAnswer("", challengeA),
			Certificate: certificateOf(identity.Identity{Role: identity.RoleServer, Name: "server1"})}, `server "server1", not "server2"`, ""},
		{"TLS: the right certificate but another node's answer", tls, ServerAnswer{
			State: &daguhav1.RaftStateResponse{NodeId: "server1", RaftAddr: "10.0.0.2:8300"}, Certificate: server2}, "answers as", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token, err := checkServerAnswer(gossipServer2, challengeA, c.answer, c.rules)
			if c.refusal == "" {
				if err != nil || token != c.wantToken {
					t.Fatalf("refused (%v) or wrong token %q; want proven with %q", err, token, c.wantToken)
				}
				return
			}
			if !errors.Is(err, errNotProven) || !strings.Contains(err.Error(), c.refusal) {
				t.Fatalf("got %v; want a refusal saying %q", err, c.refusal)
			}
		})
	}
}

func TestSigningKeysAreComparedOnlyInTheFormTheServerSent(t *testing.T) {
	proven := func(token string, mine []string, theirs []string, withheld bool) (string, error) {
		state := &daguhav1.RaftStateResponse{NodeId: "server2", SigningKeyIds: theirs, KeysWithheld: withheld}
		if token != "" {
			state.SigningKeyIds = keyedFingerprints(token, challengeA, theirs)
			state.Proof = raftStateProof(token, challengeA, state)
		}
		return provenServer{member: gossipServer2, state: state, challenge: challengeA, token: token}.keysConflict(mine)
	}
	for _, token := range []string{"", "cluster-token"} {
		for _, c := range []struct {
			mine, theirs []string
			conflict     string
		}{
			{nil, nil, ""},
			{[]string{"k1"}, []string{"k1"}, ""},
			{[]string{"k1", "k2"}, []string{"k1"}, ""},       // a rotation's first step: the new key verifies
			{[]string{"k2", "k1"}, []string{"k1", "k2"}, ""}, // its second: the new key signs
			{[]string{"k2", "k1"}, []string{"k1"}, "does not have"},
			{[]string{"k1"}, nil, "it has none"},          // a server with the cluster's own key
			{nil, []string{"k1"}, "this server has none"}, // and the other way round
			{[]string{"k1"}, []string{"k2"}, "does not have"},
		} {
			why, err := proven(token, c.mine, c.theirs, false)
			if err != nil || (c.conflict == "" && why != "") || !strings.Contains(why, c.conflict) {
				t.Errorf("token %q, mine %v, theirs %v: conflict %q, %v; want %q", token, c.mine, c.theirs, why, err, c.conflict)
			}
		}
	}
	// Keyed fingerprints cannot be compared without the token, and
	// withheld ones not at all: neither is taken for a conflict.
	state := honestAnswer("cluster-token", challengeA)
	if _, err := (provenServer{member: gossipServer2, state: state, challenge: challengeA}).keysConflict([]string{"k1"}); err == nil {
		t.Error("keyed fingerprints were compared without the token")
	}
	if _, err := proven("", []string{"k1"}, nil, true); err == nil {
		t.Error("withheld fingerprints were compared")
	}
	// A keyed fingerprint says nothing about the key without the token:
	// it is neither the plain fingerprint nor the same for two challenges.
	a, b := keyedFingerprints("cluster-token", challengeA, []string{"k1"}), keyedFingerprints("cluster-token", challengeB, []string{"k1"})
	if a[0] == "k1" || a[0] == b[0] {
		t.Errorf("keyed fingerprints %v and %v", a, b)
	}
}

func TestAClaimOnALiveVotersRaftAddressIsNoticed(t *testing.T) {
	table := newMembers(time.Now)
	table.byName["server1"] = Member{Name: "server1", Status: MemberAlive}
	table.byName["server3"] = Member{Name: "server3", Status: MemberFailed}
	inConfig := map[raft.ServerID]raft.Server{
		"server1": {ID: "server1", Address: "10.0.0.1:8300"},
		"server3": {ID: "server3", Address: "10.0.0.3:8300"},
	}
	claim := func(name, addr string) Member { return Member{Name: name, Meta: Meta{RaftAddr: addr}} }
	if got := raftAddressHolder(inConfig, claim("impostor", "10.0.0.1:8300"), table); got != "server1" {
		t.Errorf("a claim on live server1's address: holder %q", got)
	}
	if got := raftAddressHolder(inConfig, claim("server1", "10.0.0.1:8300"), table); got != "" {
		t.Errorf("server1 itself: holder %q", got)
	}
	// A replacement may take over the address of a server that failed.
	if got := raftAddressHolder(inConfig, claim("server4", "10.0.0.3:8300"), table); got != "" {
		t.Errorf("a replacement at a failed server's address: holder %q", got)
	}
}

// countingHandler counts the records logged at Warn and above.
type countingHandler struct{ warnings *int }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		*h.warnings++
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func TestARefusalIsLoggedOncePerMemberAndReason(t *testing.T) {
	warnings := 0
	s := &Server{logger: slog.New(countingHandler{&warnings})}
	fake := Member{Name: "impostor"}
	notProven := errors.New("it did not prove it")
	for range 50 {
		s.refusals.noteProof(s, fake, notProven)
	}
	if warnings != 1 {
		t.Fatalf("50 identical refusals logged %d warnings, want 1", warnings)
	}
	s.refusals.noteProof(s, fake, errors.New("another reason"))
	s.refusals.noteProof(s, Member{Name: "impostor2"}, notProven)
	s.refusals.note(s, refusedKeys, fake, "keys", notProven)
	if warnings != 4 {
		t.Fatalf("a new reason, a new member and a new kind logged %d warnings in all, want 4", warnings)
	}
	s.refusals.noteProof(s, fake, nil)
	s.refusals.noteProof(s, fake, notProven)
	if warnings != 5 {
		t.Fatalf("a refusal after the member proved itself was not logged again (%d warnings)", warnings)
	}
}

// noPeers is a PeerClient for a server that never reaches another.
type noPeers struct{}

var errNoPeers = errors.New("no peers in this test")

func (noPeers) Apply(context.Context, string, []byte) (uint64, []byte, error) {
	return 0, nil, errNoPeers
}
func (noPeers) ReadIndex(context.Context, string, ...string) (uint64, error) { return 0, errNoPeers }
func (noPeers) RaftState(context.Context, string) (*daguhav1.RaftStateResponse, error) {
	return nil, errNoPeers
}
func (noPeers) ProveServer(context.Context, string, []byte) (ServerAnswer, error) {
	return ServerAnswer{}, errNoPeers
}

// startLoneServer starts a server that waits for peers that never come.
func startLoneServer(t *testing.T, tokens []string, keyIDs []string) *Server {
	t.Helper()
	_, transport := raft.NewInmemTransport("raft-lone")
	s, err := New(Config{
		NodeName: "lone", InMemory: true, RaftTransport: transport, BindAddr: "127.0.0.1",
		GossipPort: freeGossipPort(t), GossipTimings: GossipLocal, BootstrapExpect: 3,
		Peers: noPeers{}, ClusterTokens: tokens, SigningKeyIDs: keyIDs, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	return s
}

func TestARaftStateAnswerTellsWhatTheCallerMayKnow(t *testing.T) {
	self := func(s *Server) Member {
		m, ok := s.members.get(s.NodeName())
		if !ok {
			t.Fatal("the server is not in its own gossip table")
		}
		return m
	}
	withToken := startLoneServer(t, []string{"cluster-token"}, []string{"k1"})
	answer, err := withToken.AnswerRaftState(challengeA, RaftStateCaller{})
	if err != nil {
		t.Fatal(err)
	}
	if answer.GetNodeId() != "lone" || answer.GetRaftAddr() != "raft-lone" || answer.GetBootstrapExpect() != 3 || len(answer.GetProof()) == 0 {
		t.Fatalf("answer %+v", answer)
	}
	if answer.GetSigningKeyIds()[0] == "k1" {
		t.Fatal("a plain key fingerprint was told with a cluster token configured")
	}
	token, err := checkServerAnswer(self(withToken), challengeA, ServerAnswer{State: answer}, proofRules{tokens: []string{"cluster-token"}})
	if err != nil || token != "cluster-token" {
		t.Fatalf("a server's own answer does not prove it: %v", err)
	}
	why, err := provenServer{member: self(withToken), state: answer, challenge: challengeA, token: token}.keysConflict([]string{"k1"})
	if err != nil || why != "" {
		t.Fatalf("the same key compared as %q, %v", why, err)
	}
	if answer, err := withToken.AnswerRaftState(nil, RaftStateCaller{}); err != nil || !answer.GetKeysWithheld() || len(answer.GetSigningKeyIds()) != 0 || len(answer.GetProof()) != 0 {
		t.Fatalf("without a challenge, with a token: %+v, %v; want keys withheld and no proof", answer, err)
	}
	if _, err := withToken.AnswerRaftState(make([]byte, MaxChallengeBytes+1), RaftStateCaller{}); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Fatalf("an oversized challenge: %v", err)
	}

	open := startLoneServer(t, nil, []string{"k1"})
	for _, c := range []struct {
		caller   RaftStateCaller
		withheld bool
	}{
		{RaftStateCaller{}, false},
		{RaftStateCaller{TLS: true, Server: true}, false},
		{RaftStateCaller{TLS: true}, true},
	} {
		answer, err := open.AnswerRaftState(challengeA, c.caller)
		if err != nil || answer.GetKeysWithheld() != c.withheld || (!c.withheld && answer.GetSigningKeyIds()[0] != "k1") || len(answer.GetProof()) != 0 {
			t.Errorf("no token, caller %+v: %+v, %v", c.caller, answer, err)
		}
	}
}
