package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Regression (#21): a server started with -dags and -bootstrap-expect=3
// ten seconds before its peers stores its DAGs. Its first pushes fail
// with "no cluster leader after waiting 5s"; the DAG directory sync took
// that for invalid files, logged "fix them and save again" and waited
// for a file to change, so the DAGs were never pushed. Such failures are
// now retried until the cluster takes the files.
func TestDagsDirOfAServerStartedBeforeItsPeersIsStored(t *testing.T) {
	dags := filepath.Join(t.TempDir(), "dags")
	if err := os.Mkdir(dags, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dags, "early.yaml"), "name: early-bird\nsteps:\n  - name: s\n    command: echo early\n", 0o644)
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3, BootstrapExpect: 3, ArgsFor: func(i int) []string {
		if i == 0 {
			return []string{"-dags=" + dags}
		}
		return nil
	}})
	first := c.Agents[0]
	startProcess(t, first.Process)
	began := time.Now()
	// The head start: the first server waits for its peers, and has for
	// ten seconds, well past the forwarding hold of its first pushes.
	clustertest.WaitFor(t, 60*time.Second, first.Name+" to wait for its peers for 10 s", func() (bool, string) {
		var self wire.Self
		if code, err := first.GetJSON("/api/v2/agent/self", &self); err != nil || code != 200 {
			return false, fmt.Sprintf("HTTP %d %v", code, err)
		}
		waited := time.Since(began)
		return strings.HasPrefix(self.Bootstrap, "waiting: 1 of 3") && waited >= 10*time.Second,
			fmt.Sprintf("bootstrap %q after %s", self.Bootstrap, waited.Round(time.Second))
	})
	for _, a := range c.Agents[1:] {
		startProcess(t, a.Process)
	}
	leader := c.WaitLeader(t, 60*time.Second)
	clustertest.WaitFor(t, 90*time.Second, "the DAG of "+first.Name+"'s directory to be stored", func() (bool, string) {
		dags, err := leader.API().Dags(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, dag := range dags {
			if dag.Name == "early-bird" && dag.File == "early.yaml" {
				return true, ""
			}
			names = append(names, dag.Name)
		}
		return false, fmt.Sprintf("stored: %v", names)
	})
	if tail := first.Tail(1000); strings.Contains(tail, "fix them and save again") {
		t.Fatalf("%s took a cluster without leader for invalid files:\n%s", first.Name, tail)
	}
}
