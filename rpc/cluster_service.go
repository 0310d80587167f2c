package rpc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// ClusterBackend is what the ClusterService serves from: a cluster.Server.
type ClusterBackend interface {
	NodeName() string
	ApplyLocal(command []byte) (uint64, []byte, error)
	LeaderReadIndex(tables ...string) (uint64, error)
	AnswerRaftState(challenge []byte, caller cluster.RaftStateCaller) (*daguhav1.RaftStateResponse, error)
}

type clusterService struct {
	daguhav1.UnimplementedClusterServiceServer
	backend    ClusterBackend
	heartbeats *dispatch.Heartbeats
	// restoring is set while a snapshot restore is received or applied.
	restoring atomic.Bool
}

// RegisterClusterService serves the server-to-server service on s.
func RegisterClusterService(s *grpc.Server, backend ClusterBackend, heartbeats *dispatch.Heartbeats) {
	daguhav1.RegisterClusterServiceServer(s, &clusterService{backend: backend, heartbeats: heartbeats})
}

func (c *clusterService) WorkerHeartbeats(context.Context, *daguhav1.WorkerHeartbeatsRequest) (*daguhav1.WorkerHeartbeatsResponse, error) {
	ids, ages := c.heartbeats.Ages()
	resp := &daguhav1.WorkerHeartbeatsResponse{WorkerIds: ids}
	for _, age := range ages {
		// Round up: a copy may date a heartbeat earlier, never later.
		resp.AgeMillis = append(resp.AgeMillis, (age + time.Millisecond - 1).Milliseconds())
	}
	return resp, nil
}

func (c *clusterService) Apply(_ context.Context, req *daguhav1.ApplyRequest) (*daguhav1.ApplyResponse, error) {
	index, result, err := c.backend.ApplyLocal(req.GetCommand())
	if err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.ApplyResponse{Index: index, Result: result}, nil
}

func (c *clusterService) ReadIndex(_ context.Context, req *daguhav1.ReadIndexRequest) (*daguhav1.ReadIndexResponse, error) {
	index, err := c.backend.LeaderReadIndex(req.GetTables()...)
	if err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.ReadIndexResponse{Index: index}, nil
}

// RaftState answers with this server's Raft state and who it is, proven
// over the caller's challenge (cluster.Server.AnswerRaftState). What the
// answer may tell depends on who the link says calls.
func (c *clusterService) RaftState(ctx context.Context, req *daguhav1.RaftStateRequest) (*daguhav1.RaftStateResponse, error) {
	answer, err := c.backend.AnswerRaftState(req.GetChallenge(), raftStateCaller(ctx))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return answer, nil
}

// raftStateCaller is what the call's link proves about the caller: over
// TLS, whether the certificate the handshake verified is a server's.
func raftStateCaller(ctx context.Context) cluster.RaftStateCaller {
	var caller cluster.RaftStateCaller
	from, ok := peer.FromContext(ctx)
	if !ok {
		return caller
	}
	info, ok := from.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return caller
	}
	caller.TLS = true
	if certificate := verifiedLeaf(info); certificate != nil {
		id, err := identity.FromCertificate(certificate)
		caller.Server = err == nil && id.Role == identity.RoleServer
	}
	return caller
}

// verifiedLeaf is the peer's certificate when the handshake verified it
// against the CA, else nil.
func verifiedLeaf(info credentials.TLSInfo) *x509.Certificate {
	if len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

// PeerClient reaches other servers' ClusterService, keeping one
// connection per address. It implements cluster.PeerClient.
type PeerClient struct {
	dialOptions []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewPeerClient returns a client; with no options it speaks plaintext.
func NewPeerClient(options ...grpc.DialOption) *PeerClient {
	if len(options) == 0 {
		options = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	options = append(options[:len(options):len(options)], ClientMessageLimits())
	return &PeerClient{dialOptions: options, conns: map[string]*grpc.ClientConn{}}
}

// conn returns the shared connection to a server.
func (p *PeerClient) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, fmt.Errorf("peer client is closed")
	}
	conn, ok := p.conns[addr]
	if !ok {
		var err error
		conn, err = grpc.NewClient(addr, p.dialOptions...)
		if err != nil {
			return nil, fmt.Errorf("connect to server %s: %w", addr, err)
		}
		p.conns[addr] = conn
	}
	return conn, nil
}

func (p *PeerClient) client(addr string) (daguhav1.ClusterServiceClient, error) {
	conn, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return daguhav1.NewClusterServiceClient(conn), nil
}

func (p *PeerClient) Apply(ctx context.Context, addr string, command []byte) (uint64, []byte, error) {
	client, err := p.client(addr)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Apply(ctx, &daguhav1.ApplyRequest{Command: command})
	if err != nil {
		return 0, nil, fromStatus(err)
	}
	return resp.GetIndex(), resp.GetResult(), nil
}

func (p *PeerClient) ReadIndex(ctx context.Context, addr string, tables ...string) (uint64, error) {
	client, err := p.client(addr)
	if err != nil {
		return 0, err
	}
	resp, err := client.ReadIndex(ctx, &daguhav1.ReadIndexRequest{Tables: tables})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.GetIndex(), nil
}

func (p *PeerClient) RaftState(ctx context.Context, addr string) (*daguhav1.RaftStateResponse, error) {
	client, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	resp, err := client.RaftState(ctx, &daguhav1.RaftStateRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp, nil
}

// ProveServer asks the server at addr for its RaftState with challenge
// and returns its answer with the certificate it presented, when the
// handshake verified one. It implements cluster.PeerClient.
func (p *PeerClient) ProveServer(ctx context.Context, addr string, challenge []byte) (cluster.ServerAnswer, error) {
	client, err := p.client(addr)
	if err != nil {
		return cluster.ServerAnswer{}, err
	}
	var from peer.Peer
	resp, err := client.RaftState(ctx, &daguhav1.RaftStateRequest{Challenge: challenge}, grpc.Peer(&from))
	if err != nil {
		return cluster.ServerAnswer{}, fromStatus(err)
	}
	answer := cluster.ServerAnswer{State: resp}
	if info, ok := from.AuthInfo.(credentials.TLSInfo); ok {
		answer.Certificate = verifiedLeaf(info)
	}
	return answer, nil
}

// Close closes every connection.
func (p *PeerClient) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conn := range p.conns {
		conn.Close()
		delete(p.conns, addr)
	}
	p.conns = nil
	return nil
}

// OperatorBackend is what the operator RPCs run on the leader.
type OperatorBackend interface {
	RemovePeerLocal(id string) error
	TransferLeadershipLocal(id string) error
}

func (c *clusterService) RemovePeer(_ context.Context, req *daguhav1.RemovePeerRequest) (*daguhav1.RemovePeerResponse, error) {
	op, ok := c.backend.(OperatorBackend)
	if !ok {
		return nil, toStatus(errors.New("operator changes are not served here"))
	}
	if err := op.RemovePeerLocal(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.RemovePeerResponse{}, nil
}

func (c *clusterService) TransferLeadership(_ context.Context, req *daguhav1.TransferLeadershipRequest) (*daguhav1.TransferLeadershipResponse, error) {
	op, ok := c.backend.(OperatorBackend)
	if !ok {
		return nil, toStatus(errors.New("operator changes are not served here"))
	}
	if err := op.TransferLeadershipLocal(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.TransferLeadershipResponse{}, nil
}

// RemovePeer asks the leader at addr to remove a server.
func (p *PeerClient) RemovePeer(ctx context.Context, addr, id string) error {
	client, err := p.client(addr)
	if err != nil {
		return err
	}
	_, err = client.RemovePeer(ctx, &daguhav1.RemovePeerRequest{Id: id})
	return fromStatus(err)
}

// TransferLeadership asks the leader at addr to hand leadership over.
func (p *PeerClient) TransferLeadership(ctx context.Context, addr, id string) error {
	client, err := p.client(addr)
	if err != nil {
		return err
	}
	_, err = client.TransferLeadership(ctx, &daguhav1.TransferLeadershipRequest{Id: id})
	return fromStatus(err)
}

// ArchiveBackend restores archives on the leader.
type ArchiveBackend interface {
	IsLeader() bool
	SpoolArchive(r io.Reader) (*cluster.SpooledArchive, error)
	RestoreArchiveLocal(archive *cluster.SpooledArchive) error
}

// RestoreSnapshot receives an archive in chunks into a temporary file on
// the leader and restores from it; one restore at a time. A server that is
// not the leader says so before taking any of the archive.
func (c *clusterService) RestoreSnapshot(stream daguhav1.ClusterService_RestoreSnapshotServer) error {
	backend, ok := c.backend.(ArchiveBackend)
	if !ok {
		return toStatus(errors.New("restores are not served here"))
	}
	if !backend.IsLeader() {
		return toStatus(&cluster.RetryableError{Err: errors.New("this server is not the leader: send the restore to the leader")})
	}
	if !c.restoring.CompareAndSwap(false, true) {
		return toStatus(&cluster.CommandError{Err: errors.New("another snapshot restore is under way on the leader; try again when it has finished")})
	}
	defer c.restoring.Store(false)
	archive, err := backend.SpoolArchive(&chunkReader{stream: stream})
	if err != nil {
		return toStatus(err)
	}
	defer archive.Remove()
	if err := backend.RestoreArchiveLocal(archive); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&daguhav1.RestoreSnapshotResponse{})
}

// chunkReader reads the chunks of a restore stream as one byte stream.
type chunkReader struct {
	stream daguhav1.ClusterService_RestoreSnapshotServer
	rest   []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		chunk, err := r.stream.Recv()
		if err != nil {
			return 0, err
		}
		r.rest = chunk.GetData()
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// RestoreSnapshot streams the archive read from archive to the leader at
// addr, in chunks of cluster.ArchiveChunkBytes.
func (p *PeerClient) RestoreSnapshot(ctx context.Context, addr string, archive io.Reader) error {
	client, err := p.client(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.RestoreSnapshot(ctx)
	if err != nil {
		return fromStatus(err)
	}
	for {
		// A chunk of its own each time: gRPC may still hold a message
		// after Send returns.
		chunk := make([]byte, cluster.ArchiveChunkBytes)
		n, readErr := io.ReadFull(archive, chunk)
		if n > 0 {
			if err := stream.Send(&daguhav1.RestoreSnapshotChunk{Data: chunk[:n]}); err != nil {
				if errors.Is(err, io.EOF) {
					break // the leader ended the call; its status says why
				}
				return fromStatus(err)
			}
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			break
		}
		if readErr != nil {
			return fmt.Errorf("read the archive to send: %w", readErr)
		}
	}
	_, err = stream.CloseAndRecv()
	return fromStatus(err)
}
