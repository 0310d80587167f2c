package agent

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/daguha/daguha/cluster"
)

// The step log service listens where it is told; not told, at the
// address the worker reaches the servers (or its gossip seeds) from, and
// on every interface only when told 0.0.0.0. What it advertises is an
// address the servers can dial.
func TestStepLogListenerBindsWhereTheServersReachTheWorker(t *testing.T) {
	// Nothing needs to listen at the servers' addresses: the address is
	// found by routing.
	servers := []string{"127.0.0.1:1"}
	for name, c := range map[string]struct {
		bind       string
		servers    []string
		gossip     *cluster.WorkerMemberConfig
		listenHost string
	}{
		"not told: towards the servers":       {"", servers, nil, "127.0.0.1"},
		"a port only: towards the servers":    {":0", servers, nil, "127.0.0.1"},
		"not told: towards the gossip seeds":  {"", nil, &cluster.WorkerMemberConfig{Join: []string{"127.0.0.1:2"}}, "127.0.0.1"},
		"told a host":                         {"127.0.0.1:0", servers, nil, "127.0.0.1"},
		"told every interface, and only then": {"0.0.0.0:0", servers, nil, "0.0.0.0"},
	} {
		a := &WorkerAgent{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		config := &WorkerConfig{LogBind: c.bind, Servers: c.servers, Gossip: c.gossip}
		ln, err := a.listenForLogs(config)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		listening := ln.Addr().(*net.TCPAddr)
		ln.Close()
		if want := net.ParseIP(c.listenHost); !listening.IP.Equal(want) && !(want.IsUnspecified() && listening.IP.IsUnspecified()) {
			t.Errorf("%s: listens on %s, want host %s", name, listening, c.listenHost)
		}
		host, port, err := net.SplitHostPort(config.Worker.LogAddr)
		if err != nil || host != "127.0.0.1" || port != strconv.Itoa(listening.Port) {
			t.Errorf("%s: advertises %q, want 127.0.0.1 and the port it listens on (%s)", name, config.Worker.LogAddr, listening)
		}
	}

	a := &WorkerAgent{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if ln, err := a.listenForLogs(&WorkerConfig{LogBind: "off", Servers: servers}); ln != nil || err != nil {
		t.Errorf("off: listener %v, %v; want none", ln, err)
	}
	if _, err := a.listenForLogs(&WorkerConfig{LogBind: "127.0.0.1", Servers: servers}); err == nil || !strings.Contains(err.Error(), `step log address "127.0.0.1"`) {
		t.Errorf("an address without a port: %v, want an error naming it", err)
	}
	if _, err := a.listenForLogs(&WorkerConfig{LogBind: ""}); err == nil || !strings.Contains(err.Error(), "give the step log address's host") {
		t.Errorf("no server to route towards: %v, want an error saying what to set", err)
	}
}
