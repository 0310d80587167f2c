package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/ops/client"
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

// newAPIClient is the API client the client flags describe. A call that
// answers JSON may take 30 s; streams (snapshots, logs) have no limit.
func newAPIClient(c *cli.Context) (*client.Client, error) {
	options := client.Options{Token: c.String("token"), Timeout: 30 * time.Second}
	if ca := c.String("ca-file"); ca != "" {
		config, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ca})
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		options.TLS = config
	}
	return client.New(c.String("address"), options), nil
}
