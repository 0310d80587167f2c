package daguhav1

import (
	"math"
	"time"
)

// BackoffWait is the wait a retry or repeat policy asks for before its
// (n+1)th retry or repeat, n from 0: interval_sec, times backoff to the
// power n when backoff is set, at most max_interval_sec when that is set.
// It is here, beside the policies, because the worker (step retries and
// repeats) and the state machine (a DAG's retries) both apply it.
func BackoffWait(intervalSec int64, backoff float64, maxIntervalSec int64, n int) time.Duration {
	d := float64(intervalSec) * float64(time.Second)
	if backoff > 0 && n > 0 {
		d *= math.Pow(backoff, float64(n))
	}
	if limit := float64(maxIntervalSec) * float64(time.Second); maxIntervalSec > 0 && d > limit {
		d = limit
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
