// Package bench holds daguha's benchmarks against real server processes.
// They print their figures as JSON (one object per figure) and never
// assert a wall-clock limit: the machines are shared and noisy.
//
//	go test -run '^$' -bench . -benchtime 10x ./ops/bench
package bench
