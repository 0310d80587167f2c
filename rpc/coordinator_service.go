package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// forwardedKey marks a call a follower forwarded, so the leader it reached
// answers or fails but never forwards it again.
const forwardedKey = "x-daguha-forwarded"

// coordinatorService serves workers on every server: the leader answers
// from its dispatcher, a follower forwards the call to the leader (holding
// it through an election, like every forwarded request).
type coordinatorService struct {
	daguhav1.UnimplementedCoordinatorServiceServer
	cluster    *cluster.Server
	dispatcher *dispatch.Dispatcher
	peers      *PeerClient
	// certified are the label keys whose values come from a worker's
	// certificate only.
	certified []string
	logger    *slog.Logger
}

// CoordinatorOptions are the worker protocol's settings.
type CoordinatorOptions struct {
	// CertifiedLabels are label keys a worker may carry only with the
	// value its certificate vouches for (identity.Identity.Labels): a
	// worker claiming one otherwise is refused, and one whose certificate
	// has one gets it. Without TLS no worker can have them.
	CertifiedLabels []string
	Logger          *slog.Logger
}

// RegisterCoordinatorService serves the worker-facing service on s. The
// server must run the Authorizer's interceptors: they say which worker a
// call acts for.
func RegisterCoordinatorService(s *grpc.Server, c *cluster.Server, d *dispatch.Dispatcher, peers *PeerClient, options CoordinatorOptions) {
	if options.Logger == nil {
		options.Logger = slog.Default()
	}
	certified := append([]string(nil), options.CertifiedLabels...)
	sort.Strings(certified)
	daguhav1.RegisterCoordinatorServiceServer(s, &coordinatorService{cluster: c, dispatcher: d, peers: peers, certified: certified,
		logger: options.Logger.With("component", "coordinator")})
}

// dispatchStatus maps dispatcher errors to gRPC statuses.
func dispatchStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		stale     *dispatch.StaleLeaseError
		invalid   *dispatch.InvalidRequestError
		notFound  *dispatch.NotFoundError
		forbidden *dispatch.ForbiddenError
	)
	switch {
	case errors.Is(err, dispatch.ErrNotLeader):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, dispatch.ErrBadToken):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.As(err, &forbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.As(err, &stale):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &notFound):
		return status.Error(codes.NotFound, err.Error())
	}
	return toStatus(err)
}

// route runs local on the leader, or forward against the leader's
// CoordinatorService from a follower, whose answer then names the leader
// (leaderHeader) for the worker's next calls.
//
// The worker the call acts for goes with it: the leader binds leases to
// it (dispatch.WithWorker), and a forwarded call carries it to the leader
// in metadata the leader believes from a server only.
func (c *coordinatorService) route(ctx context.Context, local func(context.Context) error, forward func(context.Context, daguhav1.CoordinatorServiceClient) error) error {
	worker, _ := WorkerFrom(ctx)
	local = c.asWorker(worker, local)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		if !c.cluster.IsLeader() {
			return status.Error(codes.Unavailable, "forwarded to a server that is no longer the leader")
		}
		return dispatchStatus(local(ctx))
	}
	call := ctx
	err := c.cluster.OnLeader(ctx, func(ctx context.Context, isLocal bool, grpcAddr string) error {
		var err error
		if isLocal {
			err = dispatchStatus(local(ctx))
		} else {
			client, cerr := c.peers.coordinator(grpcAddr)
			if cerr != nil {
				return &cluster.RetryableError{Err: cerr}
			}
			// The worker's next calls can go to the leader itself
			// (ServerList); the answer names it whatever the outcome.
			_ = grpc.SetHeader(call, metadata.Pairs(leaderHeader, grpcAddr))
			err = forward(forwardWorker(metadata.AppendToOutgoingContext(ctx, forwardedKey, "1"), worker), client)
		}
		if status.Code(err) == codes.Unavailable {
			return &cluster.RetryableError{Err: err}
		}
		return err
	})
	var retryable *cluster.RetryableError
	if errors.As(err, &retryable) || errors.Is(err, cluster.ErrNoLeader) {
		return status.Error(codes.Unavailable, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return dispatchStatus(err)
}

// asWorker runs local as the worker: a proven worker's calls may use only
// the leases granted to it.
func (c *coordinatorService) asWorker(worker Caller, local func(context.Context) error) func(context.Context) error {
	if !identity.Enforced || !worker.Proven {
		return local
	}
	return func(ctx context.Context) error { return local(dispatch.WithWorker(ctx, worker.Name)) }
}

// refuse logs a refusal of a worker's call and returns its status.
func (c *coordinatorService) refuse(ctx context.Context, method string, code codes.Code, reason string) error {
	worker, _ := WorkerFrom(ctx)
	who := "none proven"
	if worker.Proven {
		who = identity.Identity{Role: worker.Role, Name: worker.Name}.String()
	}
	c.logger.Warn("worker call refused", "method", method, "peer", peerAddr(ctx), "worker_host", worker.Host, "identity", who, "reason", reason)
	return status.Error(code, reason)
}

// bindWorker checks what a worker says of itself against what it proved
// and returns the description to act on:
//   - under TLS its id must be its certificate's worker name;
//   - certified label keys take their values from its certificate only;
//   - its log address is moved to the host its call came from, so a
//     server dials for logs only the address the worker connects from,
//     never one it chose.
func (c *coordinatorService) bindWorker(ctx context.Context, method string, info *daguhav1.WorkerInfo) (*daguhav1.WorkerInfo, error) {
	if info == nil || !identity.Enforced {
		return info, nil
	}
	worker, _ := WorkerFrom(ctx)
	if worker.Proven && info.GetId() != worker.Name {
		return nil, c.refuse(ctx, method, codes.PermissionDenied,
			fmt.Sprintf("worker id %q is not the id the caller's certificate proves (%q): a worker acts only as itself", info.GetId(), worker.Name))
	}
	bound := proto.Clone(info).(*daguhav1.WorkerInfo)
	for _, key := range c.certified {
		vouched, hasVouched := worker.Labels[key]
		hasVouched = hasVouched && worker.Proven
		if claimed, ok := info.GetLabels()[key]; ok && (!hasVouched || claimed != vouched) {
			why := "the caller's certificate vouches for no value of it"
			if hasVouched {
				why = fmt.Sprintf("the caller's certificate vouches for %q", vouched)
			}
			return nil, c.refuse(ctx, method, codes.PermissionDenied,
				fmt.Sprintf("worker %q claims the certified label %s=%q, and %s: certified labels come from worker certificates only", info.GetId(), key, claimed, why))
		}
		if hasVouched {
			if bound.Labels == nil {
				bound.Labels = map[string]string{}
			}
			bound.Labels[key] = vouched
		}
	}
	if addr := info.GetLogAddr(); addr != "" {
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return nil, c.refuse(ctx, method, codes.InvalidArgument, fmt.Sprintf("worker %q: log address %q is not host:port", info.GetId(), addr))
		}
		if worker.Host == "" {
			// Where the call came from is unknown: no address to dial.
			bound.LogAddr = ""
		} else {
			bound.LogAddr = net.JoinHostPort(worker.Host, port)
		}
	}
	return bound, nil
}

// seen records a worker's call on this server, leader or not: every
// server keeps its own view of which workers are alive.
func (c *coordinatorService) seen(info *daguhav1.WorkerInfo) {
	if valid.WorkerID(info.GetId()) == nil {
		c.dispatcher.Heartbeats().Seen(info.GetId())
	}
}

func (c *coordinatorService) Discover(context.Context, *daguhav1.DiscoverRequest) (*daguhav1.DiscoverResponse, error) {
	resp := &daguhav1.DiscoverResponse{}
	for _, m := range c.cluster.Members() {
		if m.Meta.Role == cluster.RoleServer && m.Status == cluster.MemberAlive {
			resp.Servers = append(resp.Servers, &daguhav1.ServerAddress{Name: m.Name, GrpcAddr: m.Meta.GRPCAddr, GossipAddr: m.Addr})
		}
	}
	return resp, nil
}

func (c *coordinatorService) Poll(ctx context.Context, req *daguhav1.PollRequest) (*daguhav1.PollResponse, error) {
	info, err := c.bindWorker(ctx, "Poll", req.GetWorker())
	if err != nil {
		return nil, err
	}
	if info != req.GetWorker() {
		req = proto.Clone(req).(*daguhav1.PollRequest)
		req.Worker = info
	}
	c.seen(req.GetWorker())
	var resp *daguhav1.PollResponse
	err = c.route(ctx, func(ctx context.Context) error {
		tasks, err := c.dispatcher.PollMany(ctx, req.GetWorker(), time.Duration(req.GetWaitMillis())*time.Millisecond, int(req.GetMaxTasks()))
		resp = &daguhav1.PollResponse{}
		if len(tasks) > 0 {
			resp.Task, resp.MoreTasks = tasks[0], tasks[1:]
		}
		return err
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		var err error
		resp, err = client.Poll(ctx, req)
		return err
	})
	return resp, err
}

func (c *coordinatorService) Heartbeat(ctx context.Context, req *daguhav1.HeartbeatRequest) (*daguhav1.HeartbeatResponse, error) {
	info, err := c.bindWorker(ctx, "Heartbeat", req.GetWorker())
	if err != nil {
		return nil, err
	}
	if info != req.GetWorker() {
		req = proto.Clone(req).(*daguhav1.HeartbeatRequest)
		req.Worker = info
	}
	c.seen(req.GetWorker())
	var resp *daguhav1.HeartbeatResponse
	err = c.route(ctx, func(ctx context.Context) error {
		var err error
		resp, err = c.dispatcher.Heartbeat(ctx, req.GetWorker(), req.GetLeases())
		return err
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		var err error
		resp, err = client.Heartbeat(ctx, req)
		return err
	})
	return resp, err
}

func (c *coordinatorService) ReportStep(ctx context.Context, req *daguhav1.ReportStepRequest) (*daguhav1.ReportStepResponse, error) {
	err := c.route(ctx, func(ctx context.Context) error {
		return c.dispatcher.ReportSteps(ctx, req.GetLeaseToken(), requestSteps(req))
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		_, err := client.ReportStep(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &daguhav1.ReportStepResponse{}, nil
}

// requestSteps are the states a report carries: steps in order, then the
// single step older workers send.
func requestSteps(req *daguhav1.ReportStepRequest) []*daguhav1.StepState {
	steps := req.GetSteps()
	if step := req.GetStep(); step != nil {
		steps = append(steps[:len(steps):len(steps)], step)
	}
	return steps
}

func (c *coordinatorService) FinishRun(ctx context.Context, req *daguhav1.FinishRunRequest) (*daguhav1.FinishRunResponse, error) {
	err := c.route(ctx, func(ctx context.Context) error {
		return c.dispatcher.FinishRun(ctx, req.GetLeaseToken(), req.GetStatus(), req.GetError(), req.GetOutputs(), req.GetSteps())
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		_, err := client.FinishRun(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &daguhav1.FinishRunResponse{}, nil
}

// Report records several runs' reports in one call, with an outcome per
// item; the call itself fails only when the leader cannot be reached.
func (c *coordinatorService) Report(ctx context.Context, req *daguhav1.ReportRequest) (*daguhav1.ReportResponse, error) {
	var resp *daguhav1.ReportResponse
	err := c.route(ctx, func(ctx context.Context) error {
		resp = &daguhav1.ReportResponse{Outcomes: make([]*daguhav1.ReportOutcome, len(req.GetItems()))}
		for i, err := range c.dispatcher.Report(ctx, req.GetItems()) {
			outcome := &daguhav1.ReportOutcome{}
			if err != nil {
				s := status.Convert(dispatchStatus(err))
				outcome.Code, outcome.Message = uint32(s.Code()), s.Message()
			}
			resp.Outcomes[i] = outcome
		}
		return nil
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		var err error
		resp, err = client.Report(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (c *coordinatorService) EnqueueChild(ctx context.Context, req *daguhav1.EnqueueChildRequest) (*daguhav1.EnqueueChildResponse, error) {
	var resp *daguhav1.EnqueueChildResponse
	err := c.route(ctx, func(ctx context.Context) error {
		id, created, err := c.dispatcher.EnqueueChild(ctx, req.GetLeaseToken(), req.GetStepName(), req.GetRetry(), req.GetParams())
		resp = &daguhav1.EnqueueChildResponse{ChildRunId: id, Created: created}
		return err
	}, func(ctx context.Context, client daguhav1.CoordinatorServiceClient) error {
		var err error
		resp, err = client.EnqueueChild(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// maxWatchWait bounds one blocking query.
const maxWatchWait = 60 * time.Second

// WatchRun is answered by the server the worker reached, from its own
// state, without forwarding: a blocking read may lag the leader a little.
func (c *coordinatorService) WatchRun(ctx context.Context, req *daguhav1.WatchRunRequest) (*daguhav1.WatchRunResponse, error) {
	if err := valid.RunID(req.GetRunId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, "watch: "+err.Error())
	}
	wait := min(time.Duration(req.GetWaitMillis())*time.Millisecond, maxWatchWait)
	var (
		run *daguhav1.Run
		err error
	)
	if identity.Enforced {
		// Only the run the worker's lease holds and its descendants.
		worker, _ := WorkerFrom(ctx)
		if worker.Proven {
			ctx = dispatch.WithWorker(ctx, worker.Name)
		}
		run, err = c.dispatcher.WatchHeld(ctx, req.GetLeaseToken(), req.GetRunId(), req.GetMinModifyIndex(), wait)
	} else {
		run, err = dispatch.WatchRun(ctx, c.cluster.FSM().State, req.GetRunId(), req.GetMinModifyIndex(), wait)
	}
	if err != nil {
		var forbidden *dispatch.ForbiddenError
		if errors.Is(err, dispatch.ErrBadToken) || errors.As(err, &forbidden) {
			return nil, c.refuse(ctx, "WatchRun", codes.PermissionDenied, err.Error())
		}
		return nil, dispatchStatus(err)
	}
	return &daguhav1.WatchRunResponse{Run: dispatch.ChildResult(run)}, nil
}

// coordinator returns a client for another server's CoordinatorService.
func (p *PeerClient) coordinator(addr string) (daguhav1.CoordinatorServiceClient, error) {
	conn, err := p.conn(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to leader %s: %w", addr, err)
	}
	return daguhav1.NewCoordinatorServiceClient(conn), nil
}
