package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/tlsutil"
)

// healthCommand asks a server's gRPC health service (grpc.health.v1) for
// its status, as a container health check or a Kubernetes exec probe
// would: it prints the status and exits 0 for SERVING, 1 otherwise.
func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "ask a server's gRPC health service: SERVING (exit 0) once it knows a cluster leader, else NOT_SERVING (exit 1)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "address", Value: net.JoinHostPort("127.0.0.1", strconv.Itoa(cluster.DefaultGRPCPort)), EnvVars: []string{"DAGUHA_GRPC_ADDR"}, Usage: "a server's gRPC address host:port"},
			&cli.StringFlag{Name: "service", Usage: `health service to ask: "" (ready: a leader is known) or "liveness" (the process serves)`},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "give up after this long"},
			&cli.BoolFlag{Name: "tls", EnvVars: []string{"DAGUHA_GRPC_TLS"}, Usage: "speak TLS (implied by any of the files below)"},
			&cli.StringFlag{Name: "ca-file", EnvVars: []string{"DAGUHA_CACERT"}, Usage: "CA (PEM) that signed the server's certificate (default: the system's)"},
			&cli.StringFlag{Name: "client-cert", EnvVars: []string{"DAGUHA_CLIENT_CERT"}, Usage: "client certificate (PEM), when the server asks for mutual TLS"},
			&cli.StringFlag{Name: "client-key", EnvVars: []string{"DAGUHA_CLIENT_KEY"}, Usage: "the client certificate's private key (PEM)"},
			&cli.StringFlag{Name: "tls-server-name", Usage: "name to verify the server's certificate against (default: the address's host)"},
		},
		Action: func(c *cli.Context) error {
			creds := insecure.NewCredentials()
			files := tlsutil.Files{CertFile: c.String("client-cert"), KeyFile: c.String("client-key"), CAFile: c.String("ca-file")}
			if c.Bool("tls") || files.Enabled() {
				config, err := tlsutil.ClientConfig(files)
				if err != nil {
					return fmt.Errorf("health TLS: %w", err)
				}
				if name := c.String("tls-server-name"); name != "" {
					config.ServerName = name
				}
				creds = credentials.NewTLS(config)
			}
			conn, err := grpc.NewClient(c.String("address"), grpc.WithTransportCredentials(creds))
			if err != nil {
				return fmt.Errorf("health: %w", err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.String("service")})
			if err != nil {
				return cli.Exit(fmt.Sprintf("daguha: health of %s: %v", c.String("address"), err), 1)
			}
			fmt.Fprintln(c.App.Writer, resp.GetStatus().String())
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}
