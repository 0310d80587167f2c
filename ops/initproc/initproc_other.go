//go:build !linux

package initproc

// Run does nothing outside Linux: containers are Linux's.
func Run() (int, bool) { return 0, false }
