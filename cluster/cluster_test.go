package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func TestMain(m *testing.M) {
	clustertest.MainWithLeakCheck(m)
}

func enqueue(ctx context.Context, s *cluster.Server, id string) error {
	_, _, err := s.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{
		Runs: []*daguhav1.Run{{Id: id, DagName: "dag"}},
	})
	return err
}

func TestThreeServersBootstrapOneLeaderAndThreeVoters(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	leader := c.Leader(10 * time.Second)
	clustertest.WaitFor(t, 10*time.Second, "every server to see three voters", func() (bool, string) {
		for _, s := range c.Servers {
			peers, err := s.Server.Peers()
			if err != nil {
				return false, err.Error()
			}
			voters := 0
			for _, p := range peers {
				if p.Voter {
					voters++
				}
			}
			if voters != 3 {
				return false, fmt.Sprintf("%s sees %d voters", s.Name, voters)
			}
		}
		return true, ""
	})
	for _, s := range c.Servers {
		if got := s.Server.BootstrapStatus(); got == "" {
			t.Errorf("%s has no bootstrap status", s.Name)
		}
		if name, _ := s.Server.Leader(); name != leader.Name {
			t.Errorf("%s sees leader %q, want %q", s.Name, name, leader.Name)
		}
	}
}

func TestWriteToFollowerIsForwardedAndReadableEverywhere(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := enqueue(ctx, follower.Server, "run-1"); err != nil {
		t.Fatalf("write through follower %s: %v", follower.Name, err)
	}
	for _, s := range c.Servers {
		if err := s.Server.ConsistentRead(ctx); err != nil {
			t.Fatalf("consistent read on %s: %v", s.Name, err)
		}
		run, err := s.Server.FSM().State().Run("run-1")
		if err != nil || run == nil {
			t.Fatalf("%s after a consistent read: run-1 = %v, %v", s.Name, run, err)
		}
	}
}

func TestWriteDuringElectionIsHeldUntilNewLeader(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3, ForwardHold: 10 * time.Second})
	old := c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	c.Stop(old)
	// Right after the leader is gone the follower still believes in it, or
	// knows no leader: either way the write must wait and then succeed.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := enqueue(ctx, follower.Server, "held"); err != nil {
		t.Fatalf("write during election: %v", err)
	}
	leader := c.Leader(10 * time.Second)
	if leader == old {
		t.Fatalf("the stopped server is still leader")
	}
	if run, _ := leader.Server.FSM().State().Run("held"); run == nil {
		t.Fatalf("new leader %s does not have the held write", leader.Name)
	}
}

func TestWriteWithoutQuorumFailsWithNoLeaderAfterHold(t *testing.T) {
	hold := 300 * time.Millisecond
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3, ForwardHold: hold})
	c.Leader(10 * time.Second)
	survivor := c.Followers()[0]
	for _, s := range c.Running() {
		if s != survivor {
			c.Stop(s)
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "the survivor to lose its leader", func() (bool, string) {
		name, _ := survivor.Server.Leader()
		return name == "", "still sees leader " + name
	})
	err := enqueue(context.Background(), survivor.Server, "lost")
	if !errors.Is(err, cluster.ErrNoLeader) {
		t.Fatalf("write without quorum: got %v, want ErrNoLeader", err)
	}
	if want := "no cluster leader"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestUnknownCommandIsRejectedBeforeTheLog(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	before := leader.Server.Raft().LastIndex()
	_, _, err := leader.Server.ApplyLocal([]byte{0x7e, 1, 2, 3})
	var commandErr *cluster.CommandError
	if !errors.As(err, &commandErr) {
		t.Fatalf("unknown command: got %v, want a CommandError", err)
	}
	if after := leader.Server.Raft().LastIndex(); after != before {
		t.Fatalf("unknown command reached the log: last index %d -> %d", before, after)
	}
}

func TestLeaderDutiesRunOnlyOnTheEstablishedLeader(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	// Duties registered after New may miss a leadership that began before
	// registration; wait for a leader change to check they run on the next.
	running := make(chan string, 16)
	for _, s := range c.Servers {
		name := s.Name
		s.Server.RegisterLeaderDuty("probe", func(ctx context.Context) {
			running <- name
			<-ctx.Done()
			running <- "stopped:" + name
		})
	}
	for _, s := range c.Servers {
		if got := strings.Join(s.Server.LeaderDuties(), ","); got != "reconcile-servers,probe" {
			t.Fatalf("%s lists leader duties %q, want reconcile-servers,probe", s.Name, got)
		}
	}
	old := c.Leader(10 * time.Second)
	c.Stop(old)
	leader := c.Leader(10 * time.Second)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case name := <-running:
			if name == leader.Name {
				return
			}
			if name != old.Name && name != "stopped:"+old.Name {
				t.Fatalf("duty ran on %s, which is not the leader %s", name, leader.Name)
			}
		case <-deadline:
			t.Fatalf("leader duty never started on new leader %s", leader.Name)
		}
	}
}

// A transfer that reaches a server no longer the leader (a forwarded one
// retried before the forwarder heard of the new leader) is retryable, so
// it goes on to the new leader, not back to the operator as a failure.
func TestATransferReachingAFollowerIsRetried(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	leader := c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	err := follower.Server.TransferLeadershipLocal(leader.Name)
	var retryable *cluster.RetryableError
	if !errors.As(err, &retryable) {
		t.Fatalf("a transfer asked of a follower: %v; want a retryable error", err)
	}
}
