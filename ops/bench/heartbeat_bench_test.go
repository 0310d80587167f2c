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
	const workers, conns = 1000, 20
	c := clustertest.StartCluster(b, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(b, 60*time.Second)
	var clients []daguhav1.CoordinatorServiceClient
	for i := 0; i < conns; i++ {
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", c.Agents[i%3].GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		clients = append(clients, daguhav1.NewCoordinatorServiceClient(conn))
	}
	beat := func(ctx context.Context, i int) (time.Duration, error) {
		info := &daguhav1.WorkerInfo{Id: fmt.Sprintf("sim-%04d", i), Labels: map[string]string{"pool": strconv.Itoa(i % 10)}, MaxActiveRuns: 1}
		start := time.Now()
		_, err := clients[i%conns].Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: info})
		return time.Since(start), err
	}
	// Register every worker first (a Raft write each), outside the measure.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := beat(ctx, i); err != nil {
				b.Errorf("register sim-%04d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()

	startCPU, err := cpuSeconds(leader.Pid())
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
	)
	b.ResetTimer()
	started := time.Now()
	for round := 0; round < b.N; round++ {
		roundStart := time.Now()
		for i := 0; i < workers; i++ {
			wg.Add(1)
			// Spread the workers over the second, as real ones drift apart.
			delay := time.Duration(i) * time.Second / workers
			go func(i int) {
				defer wg.Done()
				time.Sleep(time.Until(roundStart.Add(delay)))
				d, err := beat(ctx, i)
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
	b.StopTimer()
	endCPU, err := cpuSeconds(leader.Pid())
	if err != nil {
		b.Fatal(err)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	cpuShare := (endCPU - startCPU) / elapsed.Seconds()
	b.ReportMetric(cpuShare*100, "leader-cpu-%")
	b.ReportMetric(float64(percentile(latencies, 0.99).Microseconds()), "p99-µs")
	figure := map[string]any{
		"name": "heartbeats", "value": cpuShare * 100, "unit": "leader CPU % of one core",
		"workers": workers, "interval_s": 1, "seconds": b.N, "heartbeats": len(latencies), "failures": failures,
		"latency_ms": map[string]float64{
			"p50": float64(percentile(latencies, 0.50).Microseconds()) / 1000,
			"p99": float64(percentile(latencies, 0.99).Microseconds()) / 1000,
			"max": float64(percentile(latencies, 1).Microseconds()) / 1000,
		},
		"servers": 3, "race_binary": os.Getenv("DAGUHA_RACE_BINARY") == "1",
	}
	out, _ := json.Marshal(figure)
	fmt.Println(string(out))
	if failures > 0 {
		b.Errorf("%d heartbeats failed", failures)
	}
}
