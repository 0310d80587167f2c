package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/daguha/daguha/cluster/identity"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Gossip is a hint, never an authority: anyone holding the gossip key
// (every worker does) can announce a "server" with any name and any
// addresses. Before a member counts as a server (a Raft voter, a vote
// towards bootstrap-expect, a peer whose signing keys matter) this server
// asks it, at the gRPC address it advertises, for its RaftState with a
// fresh challenge, and the answer must prove that it comes from the
// server gossip names:
//
//   - always: the answer's node name and Raft address are the member's;
//   - under TLS: the certificate the answering server presented (verified
//     against the CA by the handshake) carries the server identity of
//     that node name;
//   - without TLS, with a cluster token: the answer carries an HMAC with
//     the token over the challenge and the answer, which a fake cannot
//     make and cannot replay;
//   - without TLS and without a cluster token nothing secret exists to
//     prove, and only the name and address checks apply.

// Bounds of the RaftState challenge.
const (
	challengeBytes = 32
	// MinChallengeBytes is the shortest challenge an answer proves
	// itself over: a shorter one could be replayed too easily.
	MinChallengeBytes = 16
	// MaxChallengeBytes is the longest challenge a server accepts.
	MaxChallengeBytes = 64
)

// ServerAnswer is another server's answer to RaftState and what the link
// it came over proved about the answering side.
type ServerAnswer struct {
	State *daguhav1.RaftStateResponse
	// Certificate is the leaf certificate the answering server presented
	// and the TLS handshake verified against the CA; nil without TLS.
	Certificate *x509.Certificate
}

// RaftStateCaller is what the link of a RaftState call says about the
// caller, for deciding what the answer may tell it.
type RaftStateCaller struct {
	// TLS: the call came over TLS. Server: the caller's certificate, which
	// the handshake verified, carries a server identity.
	TLS, Server bool
}

// AnswerRaftState is this server's answer to a peer's RaftState: its Raft
// state, its node name, Raft address and bootstrap-expect, its signing
// key fingerprints, and, with a cluster token and a challenge, the proof.
// The fingerprints are keyed with the token (and the challenge) when
// there is one, so that only a holder of the token can compare them; told
// plainly only in a cluster without a token, and then under TLS only to a
// caller whose certificate is a server's.
func (s *Server) AnswerRaftState(challenge []byte, caller RaftStateCaller) (*daguhav1.RaftStateResponse, error) {
	if len(challenge) > MaxChallengeBytes {
		return nil, fmt.Errorf("RaftState challenge is %d bytes; at most %d are accepted", len(challenge), MaxChallengeBytes)
	}
	answer := &daguhav1.RaftStateResponse{
		NodeId:          s.config.NodeName,
		HasState:        s.HasRaftState(),
		LastIndex:       s.raft.LastIndex(),
		Term:            s.raft.CurrentTerm(),
		RaftAddr:        string(s.raftAddr),
		HttpAddr:        s.httpAddr(),
		BootstrapExpect: int32(s.config.BootstrapExpect),
	}
	token := ""
	if len(s.config.ClusterTokens) > 0 {
		token = s.config.ClusterTokens[0]
	}
	switch {
	case token != "" && len(challenge) >= MinChallengeBytes:
		answer.SigningKeyIds = keyedFingerprints(token, challenge, s.config.SigningKeyIDs)
		answer.Proof = raftStateProof(token, challenge, answer)
	case token != "" || (caller.TLS && !caller.Server):
		answer.KeysWithheld = true
	default:
		answer.SigningKeyIds = append([]string(nil), s.config.SigningKeyIDs...)
	}
	return answer, nil
}

// raftStateProof is the HMAC with token over the challenge and every
// field of the answer but the proof, each length-prefixed so no two
// answers encode alike.
func raftStateProof(token string, challenge []byte, answer *daguhav1.RaftStateResponse) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	field := func(b []byte) {
		mac.Write(binary.AppendUvarint(nil, uint64(len(b))))
		mac.Write(b)
	}
	number := func(n uint64) { mac.Write(binary.BigEndian.AppendUint64(nil, n)) }
	field([]byte("daguha RaftState proof v1"))
	field(challenge)
	field([]byte(answer.GetNodeId()))
	field([]byte(answer.GetRaftAddr()))
	field([]byte(answer.GetHttpAddr()))
	hasState := uint64(0)
	if answer.GetHasState() {
		hasState = 1
	}
	number(hasState)
	number(answer.GetLastIndex())
	number(answer.GetTerm())
	number(uint64(int64(answer.GetBootstrapExpect())))
	number(uint64(len(answer.GetSigningKeyIds())))
	for _, id := range answer.GetSigningKeyIds() {
		field([]byte(id))
	}
	withheld := uint64(0)
	if answer.GetKeysWithheld() {
		withheld = 1
	}
	number(withheld)
	return mac.Sum(nil)
}

// keyedFingerprints keys signing key fingerprints with the cluster token
// and the challenge: equal keys give equal values under one token and
// challenge, and without the token nothing can be learnt about the keys.
func keyedFingerprints(token string, challenge []byte, keyIDs []string) []string {
	out := make([]string, 0, len(keyIDs))
	for _, id := range keyIDs {
		mac := hmac.New(sha256.New, []byte(token))
		mac.Write([]byte("daguha signing key fingerprint v1\x00"))
		mac.Write(binary.AppendUvarint(nil, uint64(len(challenge))))
		mac.Write(challenge)
		mac.Write([]byte(id))
		out = append(out, hex.EncodeToString(mac.Sum(nil)[:16]))
	}
	return out
}

// proofRules are what this server requires of an answer.
type proofRules struct {
	// tls: servers speak TLS, and the answering certificate must name
	// the server.
	tls bool
	// tokens: the cluster tokens; without TLS the answer must prove one.
	tokens []string
}

func (s *Server) proofRules() proofRules {
	return proofRules{tls: s.config.RaftTLS != nil, tokens: s.config.ClusterTokens}
}

// errNotProven is wrapped by every refusal of checkServerAnswer.
var errNotProven = errors.New("it did not prove it is the server gossip names")

// checkServerAnswer says why an answer to challenge does not prove that
// it comes from the server gossip advertises as member (an error wrapping
// errNotProven), or returns the cluster token its proof verified with
// ("" when it carries none this server holds).
func checkServerAnswer(member Member, challenge []byte, answer ServerAnswer, rules proofRules) (string, error) {
	refuse := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: %s", errNotProven, fmt.Sprintf(format, args...))
	}
	state := answer.State
	if state == nil {
		return refuse("it gave an empty answer")
	}
	if state.GetNodeId() != member.Name {
		return refuse("the server at %s answers as %q, not %q", member.Meta.GRPCAddr, state.GetNodeId(), member.Name)
	}
	if state.GetRaftAddr() != member.Meta.RaftAddr {
		return refuse("its Raft address is %q, but gossip advertises %q", state.GetRaftAddr(), member.Meta.RaftAddr)
	}
	if state.GetHttpAddr() != member.Meta.HTTPAddr {
		return refuse("its HTTP address is %q, but gossip advertises %q", state.GetHttpAddr(), member.Meta.HTTPAddr)
	}
	token := ""
	for _, candidate := range rules.tokens {
		if len(state.GetProof()) > 0 && hmac.Equal(state.GetProof(), raftStateProof(candidate, challenge, state)) {
			token = candidate
			break
		}
	}
	switch {
	case rules.tls:
		if answer.Certificate == nil {
			return refuse("it presented no certificate the cluster's CA verified")
		}
		id, err := identity.FromCertificate(answer.Certificate)
		if err != nil {
			return refuse("%v", err)
		}
		if id.Role != identity.RoleServer {
			return refuse("its certificate is the %s identity %s, not a server's", id.Role, id)
		}
		if id.Name != member.Name {
			return refuse("its certificate is the identity of server %q, not %q", id.Name, member.Name)
		}
	case len(rules.tokens) > 0 && token == "":
		if len(state.GetProof()) == 0 {
			return refuse("its answer carries no proof of the cluster token")
		}
		return refuse("its answer's proof does not verify with this server's cluster tokens (a wrong token, or a replayed answer)")
	}
	return token, nil
}

// provenServer is a member that proved it is the server gossip names.
type provenServer struct {
	member    Member
	state     *daguhav1.RaftStateResponse
	challenge []byte
	// token is the cluster token its proof verified with, if any.
	token string
}

// keysConflict says why this server's signing keys (their fingerprints,
// mine) cannot work with the proven server's, or "" when they can. The
// error says why the keys cannot be compared at all.
func (p provenServer) keysConflict(mine []string) (string, error) {
	if p.state.GetKeysWithheld() {
		return "", fmt.Errorf("server %s withheld its signing key fingerprints: it did not take this server for a server of the cluster", p.member.Name)
	}
	theirs := p.state.GetSigningKeyIds()
	if len(p.state.GetProof()) > 0 {
		// Keyed with the token: key this server's fingerprints alike.
		if p.token == "" {
			return "", fmt.Errorf("server %s keys its signing key fingerprints with a cluster token this server does not hold", p.member.Name)
		}
		return signingKeysConflict(mine, keyedFingerprints(p.token, p.challenge, mine), theirs), nil
	}
	return signingKeysConflict(mine, mine, theirs), nil
}

// proveServer asks member for its RaftState with a fresh challenge and
// checks that the answer proves it is the server gossip names. A refusal
// is logged once per member and reason; the error says why in both cases
// (it wraps errNotProven when the member answered but proved nothing).
// In the daguha_trust_off build only reachability is checked, as before
// the checks existed.
func (s *Server) proveServer(ctx context.Context, member Member) (provenServer, error) {
	if member.Meta.GRPCAddr == "" {
		err := fmt.Errorf("%w: it advertises no gRPC address", errNotProven)
		s.refusals.noteProof(s, member, err)
		return provenServer{}, err
	}
	challenge := make([]byte, challengeBytes)
	if _, err := rand.Read(challenge); err != nil {
		return provenServer{}, fmt.Errorf("make a RaftState challenge: %w", err)
	}
	answer, err := s.config.Peers.ProveServer(ctx, member.Meta.GRPCAddr, challenge)
	if err != nil {
		err = fmt.Errorf("ask %s for its RaftState: %w", member.Meta.GRPCAddr, err)
		s.refusals.noteProof(s, member, err)
		return provenServer{}, err
	}
	token := ""
	if identity.Enforced {
		token, err = checkServerAnswer(member, challenge, answer, s.proofRules())
		if err != nil {
			s.refusals.noteProof(s, member, err)
			return provenServer{}, err
		}
	}
	s.refusals.noteProof(s, member, nil)
	s.provenAddrs.set(member.Name, member.Meta.GRPCAddr, member.Meta.HTTPAddr)
	if answer.State == nil {
		answer.State = &daguhav1.RaftStateResponse{}
	}
	return provenServer{member: member, state: answer.State, challenge: challenge, token: token}, nil
}

// refusals remembers the last reason each member was refused for, so a
// member that keeps failing is logged once per reason, not on every
// reconcile, bootstrap attempt and key check.
type refusals struct {
	mu   sync.Mutex
	last map[string]string
}

// Kinds of refusal, each remembered on its own.
const (
	refusedProof       = "proof"
	refusedRaftAddress = "raft address"
	refusedKeys        = "signing keys"
)

// note records the outcome of one check of member (err nil: it passed)
// and logs message with the reason when the reason is new. A member
// that passes the proof after having been refused is logged too.
func (r *refusals) note(s *Server, kind string, member Member, message string, err error) {
	key := kind + "\x00" + member.Name
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]string{}
	}
	previous, seen := r.last[key]
	if reason == "" {
		delete(r.last, key)
	} else {
		r.last[key] = reason
	}
	r.mu.Unlock()
	switch {
	case err == nil && seen && kind == refusedProof:
		s.logger.Info("server proved it is the server gossip names", "server", member.Name, "grpc", member.Meta.GRPCAddr)
	case err == nil || previous == reason:
	default:
		s.logger.Warn(message, "server", member.Name, "grpc", member.Meta.GRPCAddr, "raft", member.Meta.RaftAddr, "reason", reason)
	}
}

// noteProof records the outcome of proveServer.
func (r *refusals) noteProof(s *Server, member Member, err error) {
	message := "refusing a gossip member as a server"
	if err != nil && !errors.Is(err, errNotProven) {
		message = "cannot reach a gossip member to check that it is a server; not counting it as one"
	}
	r.note(s, refusedProof, member, message, err)
}
