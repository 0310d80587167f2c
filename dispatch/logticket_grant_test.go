package dispatch_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/logticket"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The leader grants each task with the ticket of its attempt under the
// key it signs leases with, and a server recomputes it under every key
// it knows: the configured ones (first signs, all verify) and the key
// the cluster made before keys were configured.
func TestGrantCarriesTheLogTicketEveryServerRecomputes(t *testing.T) {
	for name, configured := range map[string][][]byte{
		"the cluster's own key": nil,
		"configured keys":       {[]byte("the new signing key"), []byte("the old signing key")},
	} {
		t.Run(name, func(t *testing.T) {
			c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
			leader := c.Leader(10 * time.Second)
			d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour, SigningKeys: configured})
			leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			spec := &daguhav1.DagSpec{Name: "d", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
			if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: "r1", DagName: "d", Dag: spec}}}); err != nil {
				t.Fatal(err)
			}
			var tasks []*daguhav1.Task
			var err error
			clustertest.WaitFor(t, 10*time.Second, "the dispatcher to grant", func() (bool, string) {
				tasks, err = d.PollMany(ctx, &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 1}, 100*time.Millisecond, 1)
				return err == nil && len(tasks) == 1, fmt.Sprint(err)
			})
			granted := tasks[0].GetLogTicket()
			key := configured
			if key == nil {
				key = [][]byte{leader.Server.FSM().State().ClusterMeta().GetSigningKey()}
			}
			if want := logticket.Sign(key[0], "r1", 1, "w1"); granted != want {
				t.Fatalf("granted ticket %q, want the one under the signing key %q", granted, want)
			}
			recomputed := d.LogTickets("r1", 1, "w1")
			if !slices.Contains(recomputed, granted) {
				t.Fatalf("the server recomputes %v, without the granted ticket", recomputed)
			}
			for _, k := range key {
				if !slices.Contains(recomputed, logticket.Sign(k, "r1", 1, "w1")) {
					t.Errorf("the server recomputes %v, without the ticket under a key it holds", recomputed)
				}
			}
			if other := d.LogTickets("r1", 1, "w2"); slices.Contains(other, granted) {
				t.Error("the ticket of another worker's attempt is the granted one")
			}
			// The ticket is no part of the replicated run.
			run, err := leader.Server.FSM().State().Run("r1")
			if err != nil || run == nil {
				t.Fatalf("run r1: %v", err)
			}
			encoded, err := proto.Marshal(run)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(encoded, []byte(granted)) {
				t.Error("the run record holds the log ticket")
			}
		})
	}
}
