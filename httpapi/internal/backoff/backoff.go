// Package backoff computes the exponential waits between retries shared by
// the Go client's Watch and the webhook notifier.
package backoff

import "time"

// Exp returns base doubled n times, at most limit.
func Exp(base, limit time.Duration, n int) time.Duration {
	d := base
	for range n {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}
