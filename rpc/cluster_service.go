package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// ClusterBackend is what the ClusterService serves from: a cluster.Server.
type ClusterBackend interface {
	NodeName() string
	ApplyLocal(command []byte) (uint64, []byte, error)
	LeaderReadIndex() (uint64, error)
	RaftStateLocal() (hasState bool, lastIndex, term uint64)
}

type clusterService struct {
	daguhav1.UnimplementedClusterServiceServer
	backend    ClusterBackend
	heartbeats *dispatch.Heartbeats
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

func (c *clusterService) ReadIndex(context.Context, *daguhav1.ReadIndexRequest) (*daguhav1.ReadIndexResponse, error) {
	index, err := c.backend.LeaderReadIndex()
	if err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.ReadIndexResponse{Index: index}, nil
}

func (c *clusterService) RaftState(context.Context, *daguhav1.RaftStateRequest) (*daguhav1.RaftStateResponse, error) {
	hasState, lastIndex, term := c.backend.RaftStateLocal()
	return &daguhav1.RaftStateResponse{NodeId: c.backend.NodeName(), HasState: hasState, LastIndex: lastIndex, Term: term}, nil
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

func (p *PeerClient) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	client, err := p.client(addr)
	if err != nil {
		return 0, err
	}
	resp, err := client.ReadIndex(ctx, &daguhav1.ReadIndexRequest{})
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
	RestoreArchiveLocal(archive []byte) error
}

func (c *clusterService) RestoreSnapshot(_ context.Context, req *daguhav1.RestoreSnapshotRequest) (*daguhav1.RestoreSnapshotResponse, error) {
	backend, ok := c.backend.(ArchiveBackend)
	if !ok {
		return nil, toStatus(errors.New("restores are not served here"))
	}
	if err := backend.RestoreArchiveLocal(req.GetArchive()); err != nil {
		return nil, toStatus(err)
	}
	return &daguhav1.RestoreSnapshotResponse{}, nil
}

// RestoreSnapshot sends an archive to the leader at addr.
func (p *PeerClient) RestoreSnapshot(ctx context.Context, addr string, archive []byte) error {
	client, err := p.client(addr)
	if err != nil {
		return err
	}
	_, err = client.RestoreSnapshot(ctx, &daguhav1.RestoreSnapshotRequest{Archive: archive},
		grpc.MaxCallSendMsgSize(cluster.MaxArchiveBytes+1<<20))
	return fromStatus(err)
}
