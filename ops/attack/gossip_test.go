package attack

import (
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// The rows of the gossip key, which every worker holds: a fake "server"
// without signing key fingerprints made every server of a fresh cluster
// exit, and fakes advertising the real servers' gRPC addresses (with Raft
// addresses nothing listens on) became voters: six voters, no leader.
// Here the fakes are in the pool from the cluster's first moment.
func TestGossipKeyAttacks(t *testing.T) {
	for _, broken := range []bool{false, true} {
		name := "real"
		if broken {
			name = "broken"
		}
		t.Run(name, func(t *testing.T) {
			held, evidence, logged := gossipAttack(t, broken)
			switch {
			case !broken && !held:
				t.Errorf("the real build lost the cluster to the impostors: %s", evidence)
			case !broken && logged == "":
				t.Errorf("the impostors were refused (%s), but no server logged why", evidence)
			case broken && held:
				t.Errorf("the broken build kept the cluster, so the real build's refusal proves nothing: %s", evidence)
			}
			verdict := "refused"
			if !held {
				verdict = "SUCCEEDED"
			}
			t.Logf("%s %s build: impostors with the gossip key: %s", verdict, name, evidence)
			if logged != "" {
				t.Logf("  logged: %s", logged)
			}
		})
	}
}

// gossipAttack starts the impostors, then a fresh cluster of three that
// joins them, and says whether the three held: every one running, the
// voters exactly the three, a leader.
func gossipAttack(t *testing.T, broken bool) (held bool, evidence, logged string) {
	ports := clustertest.FreePorts(t, 4)
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{
		Servers: 3, Binary: binary(t, broken),
		ExtraArgs: []string{"-encrypt=" + base64.StdEncoding.EncodeToString(gossipKey), "--coordinator.signing-key=gossip-attack-signing-key-01"},
		JoinOrder: func(_ int, others []string) []string {
			for _, port := range ports {
				others = append(others, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			}
			return others
		},
	})
	clustertest.StartImpostor(t, clustertest.ImpostorOptions{Name: "impostor-without-keys", GossipKey: gossipKey, GossipPort: ports[0],
		Meta: cluster.Meta{Role: cluster.RoleServer, Expect: 7}})
	for i := range 3 {
		clustertest.StartImpostor(t, clustertest.ImpostorOptions{Name: fmt.Sprintf("impostor-of-server%d", i+1), GossipKey: gossipKey, GossipPort: ports[i+1],
			Meta: cluster.Meta{Role: cluster.RoleServer, GRPCAddr: grpcAddr(c.Agents[i]), RaftAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(i+1))}})
	}
	var processes []*clustertest.Process
	for _, a := range c.Agents {
		processes = append(processes, a.Process)
	}
	marks := markLogs(processes)
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// The attack is mounted once every server has heard of every fake.
	clustertest.WaitFor(t, 30*time.Second, "every server to hear of the impostors", func() (bool, string) {
		for _, a := range c.Agents {
			if !a.Running() {
				return true, "" // an exit is the attack's work
			}
			var members wire.Members
			if code, err := getJSON(a, "", "/api/v2/cluster/members", &members); code != 200 || err != nil {
				return false, fmt.Sprintf("%s: HTTP %d %v", a.Name, code, err)
			}
			heard := 0
			for _, m := range members.Members {
				if strings.HasPrefix(m.Name, "impostor-") {
					heard++
				}
			}
			if heard < 4 {
				return false, fmt.Sprintf("%s heard of %d impostors", a.Name, heard)
			}
		}
		return true, ""
	})
	// Then the cluster must form and hold, through several reconcile
	// rounds and key checks; the attack has worked as soon as a server
	// exits or the voters are not the three.
	var last string
	formed := false
	until := time.Now().Add(45 * time.Second)
	for time.Now().Before(until) {
		status, err := holds(c)
		last = status
		if err != nil {
			return false, err.Error(), ""
		}
		if status == "" && !formed {
			formed = true
			// Formed: keep watching a while longer.
			until = time.Now().Add(10 * time.Second)
		}
		time.Sleep(250 * time.Millisecond) // the sampling interval of the watch
	}
	if !formed {
		return false, "no cluster of the three formed: " + last, ""
	}
	clustertest.Eventually(10*time.Second, 100*time.Millisecond, func() bool {
		logged = marks.since("refusing a gossip member as a server", "impostor-")
		return logged != ""
	})
	return true, "all three servers run, the voters are exactly the three, and they have a leader", logged
}

// holds says what keeps the three from holding the cluster right now ("":
// they hold it), or an error once the attack has won for good (a server
// exited, or an impostor is a voter).
func holds(c *clustertest.Cluster) (string, error) {
	for _, a := range c.Agents {
		if !a.Running() {
			return "", fmt.Errorf("%s exited: %s", a.Name, lastLine(a.Tail(3)))
		}
	}
	leader := ""
	for _, a := range c.Agents {
		var peers wire.Peers
		if code, err := getJSON(a, "", "/api/v2/cluster/peers", &peers); code != 200 || err != nil {
			return fmt.Sprintf("%s: HTTP %d %v", a.Name, code, err), nil
		}
		var voters []string
		for _, p := range peers.Peers {
			if p.Voter {
				voters = append(voters, p.ID)
			}
			if p.Leader {
				leader = p.ID
			}
		}
		sort.Strings(voters)
		got := strings.Join(voters, ",")
		if strings.Contains(got, "impostor") {
			return "", fmt.Errorf("%s reports the voters %s", a.Name, got)
		}
		if got != "server1,server2,server3" {
			return fmt.Sprintf("%s reports the voters %q", a.Name, got), nil
		}
	}
	if leader == "" {
		return "no leader", nil
	}
	return "", nil
}

func lastLine(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	return lines[len(lines)-1]
}
