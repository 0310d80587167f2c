package worker

import (
	"fmt"
	"os"
	"strconv"

	"github.com/daguha/daguha/dispatch/valid"
)

// Settings builds a worker's Config from the forms every command line
// and the config file give (an id, labels as k=v,k=v, a number of slots),
// by package valid's rules, with the seed's default id hostname@PID. It is
// the one way a worker's flags become its identity, so its refusals are
// the rules' messages.
func Settings(id, labels string, maxActiveRuns int) (Config, error) {
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return Config{}, fmt.Errorf("no worker id given and the hostname is unknown: %w", err)
		}
		id = host + "@" + strconv.Itoa(os.Getpid())
		if err := valid.WorkerID(id); err != nil {
			return Config{}, fmt.Errorf("no worker id given, and the default (hostname@PID) cannot be one: %w; set one", err)
		}
	} else if err := valid.WorkerID(id); err != nil {
		return Config{}, err
	}
	parsed, err := valid.ParseLabels(labels)
	if err != nil {
		return Config{}, fmt.Errorf("worker labels: %w", err)
	}
	if maxActiveRuns < 1 {
		return Config{}, fmt.Errorf("max active runs %d: must be at least 1", maxActiveRuns)
	}
	return Config{ID: id, Labels: parsed, MaxActiveRuns: maxActiveRuns}, nil
}
