//go:build linux

package initproc_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/initproc"
	"github.com/daguha/daguha/ops/wire"
)

// procStat is the state and parent of a process, from /proc/PID/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	fields := strings.Fields(rest)
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0][0], ppid, true
}

// processes lists every PID in /proc with its state and parent.
func processes() map[int][2]int {
	out := map[int][2]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, ok := procStat(pid); ok {
			out[pid] = [2]int{int(state), ppid}
		}
	}
	return out
}

// zombiesUnder counts the zombies among the descendants of root.
func zombiesUnder(root int) int {
	all := processes()
	under := map[int]bool{root: true}
	for changed := true; changed; {
		changed = false
		for pid, p := range all {
			if !under[pid] && under[p[1]] {
				under[pid], changed = true, true
			}
		}
	}
	n := 0
	for pid, p := range all {
		if pid != root && under[pid] && p[0] == 'Z' {
			n++
		}
	}
	return n
}

// In a PID namespace of its own, where it is PID 1 as in a container,
// `daguha agent -dev` (a server and a worker) runs steps whose leftovers
// end as orphans of PID 1: with the init they are reaped, none stays a
// zombie; with the init turned off, zombies stay, so the check can fail.
// The agent stops on SIGTERM through the init with exit code 0.
func TestPIDOneReapsOrphansOfSteps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace (unshare -p)")
	}
	if err := exec.Command("unshare", "-p", "-f", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot make a PID namespace here (unshare -p -f --mount-proc): %v", err)
	}
	bin := clustertest.BuildBinary(t)
	for _, tc := range []struct {
		name string
		init bool
	}{{"with the init", true}, {"with the init turned off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ports := clustertest.FreePorts(t, 4)
			dir := t.TempDir()
			args := []string{"-p", "-f", "--mount-proc", bin, "agent", "-dev",
				"-http-port=" + strconv.Itoa(ports[0]), "-grpc-port=" + strconv.Itoa(ports[1]),
				"-raft-port=" + strconv.Itoa(ports[2]), "-gossip-port=" + strconv.Itoa(ports[3]),
				"-step-log-dir=" + filepath.Join(dir, "logs")}
			p := clustertest.NewProcess(t, "pid1", dir, "unshare", args...)
			if !tc.init {
				p.Env = []string{initproc.ChildEnv + "=off"}
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			agent := &clustertest.Agent{Process: p, Name: "pid1", HTTPPort: ports[0]}
			clustertest.WaitFor(t, 60*time.Second, "the dev agent to lead", func() (bool, string) {
				h, err := agent.Health()
				return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
			})
			// unshare forks the namespace's PID 1: its one child.
			var pid1 int
			for pid, s := range processes() {
				if s[1] == p.Pid() {
					pid1 = pid
				}
			}
			if pid1 == 0 {
				t.Fatalf("no child of unshare (pid %d)", p.Pid())
			}
			// Each step leaves a sleep behind, killed when the step ends:
			// an orphan of PID 1 once its shell has exited.
			const runs = 5
			for i := range runs {
				body := wire.EnqueueRequest{DagRunID: fmt.Sprintf("orphans-%d", i), Dag: &wire.InlineDag{
					Name: "orphans", Steps: []wire.InlineStep{{Name: "s", Command: "sleep 300 & exit 0"}}}}
				var resp wire.Enqueued
				if code, err := agent.PostJSON("/api/v2/dag-runs", body, &resp); err != nil || code != 201 {
					t.Fatalf("enqueue: HTTP %d %v", code, err)
				}
			}
			clustertest.WaitFor(t, 60*time.Second, "the runs to succeed", func() (bool, string) {
				for i := range runs {
					var run wire.Run
					if code, err := agent.GetJSON(fmt.Sprintf("/api/v2/dag-runs/orphans-%d", i), &run); err != nil || code != 200 || run.Status != "succeeded" {
						return false, fmt.Sprintf("orphans-%d: HTTP %d %s %v", i, code, run.Status, err)
					}
				}
				return true, ""
			})
			if tc.init {
				clustertest.WaitFor(t, 30*time.Second, "every orphan reaped", func() (bool, string) {
					n := zombiesUnder(pid1)
					return n == 0, fmt.Sprintf("%d zombies under PID 1", n)
				})
				p.Stop()
				if code := p.ExitCode(); code != 0 {
					t.Fatalf("stopped through the init: exit %d\n%s", code, p.Tail(40))
				}
				return
			}
			clustertest.WaitFor(t, 30*time.Second, "the killed leftovers to stay zombies", func() (bool, string) {
				n := zombiesUnder(pid1)
				return n >= runs, fmt.Sprintf("%d zombies under PID 1", n)
			})
		})
	}
}
