package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/daguha/daguha/cluster/clustertest"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	os.Exit(code)
}

// cpuSeconds is the user+system CPU time a process has used so far.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	// utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (utime + stime) / clockTicks, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkHeartbeats1000Workers: 1,000 simulated workers (goroutines in
// this process, over 20 gRPC connections spread across the three servers)
// each heartbeat once a second. One iteration is one second of that load.
// It reports the leader's CPU use (share of one core) and the heartbeat
// RPC latency seen by the workers, including forwarding from followers.
func BenchmarkHeartbeats1000Workers(b *testing.B) {
	f := heartbeatLoad(b, 1000, b.N, nil)
	b.ReportMetric(f["value"].(float64), "leader-cpu-%")
	out, _ := json.Marshal(f)
	fmt.Println(string(out))
}

// heartbeatLoad runs workers simulated workers heartbeating once a second
// for the given seconds against three real servers and returns the figure;
// with profile, the leader's CPU profile over those seconds goes with it.
func heartbeatLoad(tb testing.TB, workers, seconds int, profile func(leader *clustertest.Agent, seconds int) func() map[string]any) figure {
	const conns = 20
	c := clustertest.StartCluster(tb, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-pprof"}})
	leader := c.WaitLeader(tb, 60*time.Second)
	defer stopCluster(c)
	var clients []daguhav1.CoordinatorServiceClient
	for i := 0; i < conns; i++ {
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", c.Agents[i%3].GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		defer conn.Close()
		clients = append(clients, daguhav1.NewCoordinatorServiceClient(conn))
	}
	beat := func(ctx context.Context, i int) (time.Duration, error) {
		info := &daguhav1.WorkerInfo{Id: fmt.Sprintf("sim-%05d", i), Labels: map[string]string{"pool": strconv.Itoa(i % 10)}, MaxActiveRuns: 1}
		start := time.Now()
		_, err := clients[i%conns].Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: info})
		return time.Since(start), err
	}
	// Register every worker first (a Raft write each), outside the measure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := beat(ctx, i); err != nil {
				tb.Errorf("register sim-%05d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()

	if b, ok := tb.(*testing.B); ok {
		b.ResetTimer()
	}
	var profiled func() map[string]any
	if profile != nil {
		profiled = profile(leader, seconds)
	}
	cpuShare, latencies, failures, elapsed := leaderLoad(tb, leader, workers, seconds, beat)
	if b, ok := tb.(*testing.B); ok {
		b.StopTimer()
	}
	// The profile covers the heartbeats alone, not the baseline after.
	var profiledFigure map[string]any
	if profiled != nil {
		profiledFigure = profiled()
	}
	// The baseline: the same calls at the same rate, but of the gRPC
	// health check, answered by the leader without any dispatch work:
	// what a bare unary call costs this process on this machine.
	health := healthpb.NewHealthClient(leaderConn(tb, leader))
	bare, _, bareFailures, _ := leaderLoad(tb, leader, workers, seconds, func(ctx context.Context, i int) (time.Duration, error) {
		start := time.Now()
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "liveness"})
		return time.Since(start), err
	})
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	if failures > 0 {
		tb.Errorf("%d heartbeats failed", failures)
	}
	f := figure{
		"name": "heartbeats", "value": cpuShare * 100, "unit": "leader CPU % of one core",
		"params":     figure{"workers": workers, "interval_s": 1, "seconds": seconds, "servers": 3, "race_binary": os.Getenv("DAGUHA_RACE_BINARY") == "1"},
		"heartbeats": len(latencies), "failures": failures,
		// What the load generator achieved, sharing the machine: below
		// workers/s when it could not keep up.
		"heartbeats_per_s": float64(len(latencies)) / elapsed.Seconds(),
		"latency_ms": figure{
			"p50": ms(percentile(latencies, 0.50)),
			"p99": ms(percentile(latencies, 0.99)),
			"max": ms(percentile(latencies, 1)),
		},
	}
	if profiledFigure != nil {
		f["profile_leader"] = profiledFigure
	}
	f["baseline"] = figure{"bare_grpc_calls_leader_cpu_percent": bare * 100, "failures": bareFailures,
		"what": "the same number of gRPC health checks a second, all to the leader over one connection"}
	if bare > 0 {
		f["ratio_to_bare_grpc"] = cpuShare / bare
	}
	return f
}

// leaderConn is a gRPC connection to the leader alone.
func leaderConn(tb testing.TB, leader *clustertest.Agent) *grpc.ClientConn {
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", leader.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// leaderLoad makes calls calls a second, each of the numbers 0..calls-1
// once a second, spread over the second as real workers drift apart, for
// the given seconds; it returns the leader's CPU share over that time (1:
// one core), the calls' latencies (sorted by the caller), the failures
// and the time it took.
func leaderLoad(tb testing.TB, leader *clustertest.Agent, calls, seconds int, call func(ctx context.Context, i int) (time.Duration, error)) (float64, []time.Duration, int, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+5*time.Minute)
	defer cancel()
	startCPU, err := cpuSeconds(leader.Pid())
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu        sync.Mutex
		wg        sync.WaitGroup
		latencies []time.Duration
		failures  int
	)
	started := time.Now()
	for round := 0; round < seconds; round++ {
		roundStart := time.Now()
		for i := 0; i < calls; i++ {
			wg.Add(1)
			delay := time.Duration(i) * time.Second / time.Duration(calls)
			go func(i int) {
				defer wg.Done()
				time.Sleep(time.Until(roundStart.Add(delay)))
				d, err := call(ctx, i)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures++
					return
				}
				latencies = append(latencies, d)
			}(i)
		}
		wg.Wait()
		time.Sleep(time.Until(roundStart.Add(time.Second)))
	}
	elapsed := time.Since(started)
	endCPU, err := cpuSeconds(leader.Pid())
	if err != nil {
		tb.Fatal(err)
	}
	return (endCPU - startCPU) / elapsed.Seconds(), latencies, failures, elapsed
}
