package rpc

import (
	"math"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"
)

// fakeSubConn stands for a ready subchannel: the picker only hands it out.
type fakeSubConn struct {
	balancer.SubConn
	name string
}

// The round-robin counter wraps past 2^31 and 2^32 (it starts at a random
// value): every pick stays a server of the list, on 32-bit builds too
// (GOARCH=386 go test -run TestLeaderFirstPickerWrapsAround ./rpc), where
// a negative index once panicked.
func TestLeaderFirstPickerWrapsAround(t *testing.T) {
	info := base.PickerBuildInfo{ReadySCs: map[balancer.SubConn]base.SubConnInfo{}}
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		info.ReadySCs[&fakeSubConn{name: a}] = base.SubConnInfo{Address: resolver.Address{Addr: a}}
	}
	p := leaderFirstPickers{}.Build(info).(*leaderFirstPicker)
	for _, start := range []uint32{math.MaxInt32 - 2, math.MaxUint32 - 2} {
		p.next.Store(start)
		seen := map[string]int{}
		for range 6 {
			res, err := p.Pick(balancer.PickInfo{})
			if err != nil {
				t.Fatalf("from %d: pick: %v", start, err)
			}
			seen[res.SubConn.(*fakeSubConn).name]++
		}
		if len(seen) != 3 {
			t.Errorf("from %d: six picks went to %v, want each of the three servers", start, seen)
		}
	}
}
