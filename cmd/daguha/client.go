package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

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
	return a.doTimeout(method, path, body, out, a.http.Timeout)
}

// doTimeout is do with its own time limit (blocking queries wait longer
// than the client's default).
func (a *apiClient) doTimeout(method, path string, body, out any, timeout time.Duration) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	resp, err := a.send(method, path, reader, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return responseError(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// responseError turns an error answer into an error carrying the server's
// message.
func responseError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	return fmt.Errorf("%s %s: HTTP %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, data)
}
