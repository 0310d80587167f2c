package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/ops/tlsutil"
)

// clientFlags are the flags every client command takes, as Nomad's and
// Consul's CLIs do.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "address", Value: "http://127.0.0.1:8080", EnvVars: []string{"DAGUHA_ADDR"}, Usage: "a server's HTTP address"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"DAGUHA_API_TOKEN"}, Usage: "API token, sent as Authorization: Bearer"},
		&cli.StringFlag{Name: "ca-file", EnvVars: []string{"DAGUHA_CACERT"}, Usage: "CA (PEM) that signed the server's HTTPS certificate (default: the system's)"},
	}
}

type apiClient struct {
	address string
	token   string
	http    *http.Client
}

func newAPIClient(c *cli.Context) (*apiClient, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if ca := c.String("ca-file"); ca != "" {
		config, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ca})
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		client.Transport = &http.Transport{TLSClientConfig: config}
	}
	return &apiClient{address: strings.TrimRight(c.String("address"), "/"), token: c.String("token"), http: client}, nil
}

// send sends a request with the client's token; timeout 0 means none
// (a stream of any length).
func (a *apiClient) send(method, path string, body io.Reader, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest(method, a.address+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	client := *a.http
	client.Timeout = timeout
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, a.address+path, err)
	}
	return resp, nil
}

// do sends a request and decodes the JSON answer; an error answer becomes
// an error carrying the server's message.
func (a *apiClient) do(method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	resp, err := a.send(method, path, reader, a.http.Timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// dagFile is the part of Dagu's DAG file format a run needs here: name,
// worker selector (either spelling) and steps with commands.
type dagFile struct {
	Name                 string            `yaml:"name" json:"name"`
	WorkerSelector       map[string]string `yaml:"workerSelector" json:"workerSelector,omitempty"`
	WorkerSelectorEscape map[string]string `yaml:"worker_selector" json:"worker_selector,omitempty"`
	Steps                []struct {
		Name    string `yaml:"name" json:"name"`
		Command string `yaml:"command" json:"command"`
	} `yaml:"steps" json:"steps"`
}

func readDAGFile(path string) (*dagFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var dag dagFile
	if err := yaml.Unmarshal(data, &dag); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dag.Name == "" {
		return nil, fmt.Errorf("%s: the DAG has no name", path)
	}
	return &dag, nil
}

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:      "enqueue",
		Usage:     "enqueue a run of the DAG in FILE.yaml",
		ArgsUsage: "FILE.yaml",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "run-id", Usage: "the run's id (default: the server makes one up)"},
			&cli.StringFlag{Name: "params", Usage: "the run's parameters"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the run has finished; exit 1 unless it succeeded"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("enqueue takes one DAG file")
			}
			dag, err := readDAGFile(c.Args().First())
			if err != nil {
				return err
			}
			client, err := newAPIClient(c)
			if err != nil {
				return err
			}
			var resp struct {
				DagRunID string `json:"dag_run_id"`
			}
			if err := client.do("POST", "/api/v2/dag-runs", map[string]any{
				"dag": dag, "dag_run_id": c.String("run-id"), "params": c.String("params"),
			}, &resp); err != nil {
				return err
			}
			fmt.Println(resp.DagRunID)
			if !c.Bool("wait") {
				return nil
			}
			return waitForRun(client, resp.DagRunID)
		},
	}
}

type runStatus struct {
	DagName    string `json:"dag_name"`
	DagRunID   string `json:"dag_run_id"`
	Status     string `json:"status"`
	WorkerID   string `json:"worker_id"`
	Attempt    uint32 `json:"attempt"`
	EnqueuedAt string `json:"enqueued_at"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	Steps      []struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
	} `json:"steps"`
}

func waitForRun(client *apiClient, id string) error {
	for {
		var run runStatus
		if err := client.do("GET", "/api/v2/dag-runs/"+id, nil, &run); err != nil {
			return err
		}
		switch run.Status {
		case "succeeded":
			return nil
		case "failed", "cancelled":
			return cli.Exit(fmt.Sprintf("run %s %s: %s", id, run.Status, run.Error), 1)
		}
		time.Sleep(500 * time.Millisecond) // polling interval of the wait
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a DAG run",
		ArgsUsage: "RUN_ID",
		Flags:     clientFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("status takes one run id")
			}
			client, err := newAPIClient(c)
			if err != nil {
				return err
			}
			var run runStatus
			if err := client.do("GET", "/api/v2/dag-runs/"+c.Args().First(), nil, &run); err != nil {
				return err
			}
			fmt.Printf("run        %s\ndag        %s\nstatus     %s\n", run.DagRunID, run.DagName, run.Status)
			if run.Reason != "" {
				fmt.Printf("waiting    %s\n", run.Reason)
			}
			if run.WorkerID != "" {
				fmt.Printf("worker     %s (attempt %d)\n", run.WorkerID, run.Attempt)
			}
			fmt.Printf("enqueued   %s\n", run.EnqueuedAt)
			if run.StartedAt != "" {
				fmt.Printf("started    %s\n", run.StartedAt)
			}
			if run.FinishedAt != "" {
				fmt.Printf("finished   %s\n", run.FinishedAt)
			}
			if run.Error != "" {
				fmt.Printf("error      %s\n", run.Error)
			}
			for _, step := range run.Steps {
				fmt.Printf("step       %-20s %-10s exit %d\n", step.Name, step.Status, step.ExitCode)
			}
			return nil
		},
	}
}
