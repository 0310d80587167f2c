package bench

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/store"
)

// countFSM is the smallest state machine: it counts entries.
type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(*raft.Log) interface{} {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return nil
}
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *countFSM) Restore(io.ReadCloser) error         { return nil }

// baselineRaft is a bare hashicorp/raft cluster of three in this process,
// on the same disk and store daguha uses (raft-boltdb, fsync on) and TCP
// on loopback: the apply rate daguha's throughput is a fraction of, with
// 256 applies in flight (what daguha's batchers allow).
func (s *suite) baselineRaft() float64 {
	return s.bareRaft(false)
}

// bareRaft measures the bare cluster, with or without raft's batching of
// the apply channel (Config.BatchApplyCh), so the effect of that one
// setting shows in one run.
func (s *suite) bareRaft(batch bool) float64 {
	entries := s.pick(20000, 3000)
	var nodes []*raft.Raft
	var servers []raft.Server
	var transports []*raft.NetworkTransport
	var stores []*store.RaftStores
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		tcpAddr, _ := net.ResolveTCPAddr("tcp", addr)
		transport, err := raft.NewTCPTransport(addr, tcpAddr, 3, 10*time.Second, io.Discard)
		if err != nil {
			s.t.Fatal(err)
		}
		transports = append(transports, transport)
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i)), Address: transport.LocalAddr()})
	}
	for i := 0; i < 3; i++ {
		rs, err := store.OpenRaftStores(s.t.TempDir(), io.Discard)
		if err != nil {
			s.t.Fatal(err)
		}
		stores = append(stores, rs)
		config := raft.DefaultConfig()
		config.LocalID = servers[i].ID
		config.LogOutput = io.Discard
		config.BatchApplyCh = batch
		r, err := raft.NewRaft(config, &countFSM{}, rs.Log, rs.Log, rs.Snapshots, transports[i])
		if err != nil {
			s.t.Fatal(err)
		}
		nodes = append(nodes, r)
	}
	defer func() {
		for i, r := range nodes {
			_ = r.Shutdown().Error()
			stores[i].Close()
		}
	}()
	if err := nodes[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		s.t.Fatal(err)
	}
	var leader *raft.Raft
	deadline := time.Now().Add(30 * time.Second)
	for leader == nil && time.Now().Before(deadline) {
		for _, r := range nodes {
			if r.State() == raft.Leader {
				leader = r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if leader == nil {
		s.t.Fatal("no leader in the bare raft cluster")
	}
	payload := make([]byte, 256)
	inFlight := make(chan raft.ApplyFuture, 256)
	var wg sync.WaitGroup
	var failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range inFlight {
			if f.Error() != nil {
				failed++
			}
		}
	}()
	start := time.Now()
	for i := 0; i < entries; i++ {
		inFlight <- leader.Apply(payload, time.Minute)
	}
	close(inFlight)
	wg.Wait()
	// On an overloaded machine the bare cluster may lose its leader
	// mid-run; failed applies are reported, and the rate counts the others.
	rate := float64(entries-failed) / time.Since(start).Seconds()
	name := "baseline_raft_apply"
	if batch {
		name = "bare_raft_apply_batched"
	}
	s.add(figure{"name": name, "value": rate, "unit": "entries/s (bare hashicorp/raft, 3 nodes, raft-boltdb, 256 in flight)",
		"params": figure{"entries": entries, "entry_bytes": len(payload), "batch_apply_ch": batch}, "failed_applies": failed})
	return rate
}
