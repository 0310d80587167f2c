package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/ops/tlsutil"
)

// coordinatorTLSFlags are the seed's server-side TLS flags.
func coordinatorTLSFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "coordinator.tls-cert", EnvVars: []string{"DAGU_COORDINATOR_TLS_CERT"}, Usage: "server certificate (PEM): gRPC and Raft speak TLS"},
		&cli.StringFlag{Name: "coordinator.tls-key", EnvVars: []string{"DAGU_COORDINATOR_TLS_KEY"}, Usage: "server certificate's private key (PEM)"},
		&cli.StringFlag{Name: "coordinator.tls-ca", EnvVars: []string{"DAGU_COORDINATOR_TLS_CA"}, Usage: "CA (PEM): mutual TLS, every worker and server must present a certificate it signed"},
		&cli.StringFlag{Name: "http-tls-cert", EnvVars: []string{"DAGUHA_HTTP_TLS_CERT"}, Usage: "certificate (PEM): serve the HTTP API over HTTPS"},
		&cli.StringFlag{Name: "http-tls-key", EnvVars: []string{"DAGUHA_HTTP_TLS_KEY"}, Usage: "the HTTPS certificate's private key (PEM)"},
		&cli.StringFlag{Name: "http-tls-ca", EnvVars: []string{"DAGUHA_HTTP_TLS_CA"}, Usage: "CA (PEM) that signed the other servers' HTTPS certificates, for forwarding (default: the system's)"},
		&cli.StringSliceFlag{Name: "encrypt", EnvVars: []string{"DAGU_CLUSTER_ENCRYPT"}, Usage: "gossip encryption key (base64, from daguha keygen); several for rotation: the first encrypts, all decrypt"},
	}
}

// workerTLSFlags are the seed's worker-side TLS flags.
func workerTLSFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "worker.insecure", Value: true, EnvVars: []string{"DAGU_WORKER_INSECURE"}, Usage: "speak plaintext to the coordinator (false: TLS)"},
		&cli.StringFlag{Name: "worker.tls-cert", EnvVars: []string{"DAGU_WORKER_TLS_CERT"}, Usage: "client certificate (PEM) for mutual TLS"},
		&cli.StringFlag{Name: "worker.tls-key", EnvVars: []string{"DAGU_WORKER_TLS_KEY"}, Usage: "client certificate's private key (PEM)"},
		&cli.StringFlag{Name: "worker.tls-ca", EnvVars: []string{"DAGU_WORKER_TLS_CA"}, Usage: "CA (PEM) that signed the coordinator's certificate"},
	}
}

func httpTLS(c *cli.Context) tlsutil.Files {
	return tlsutil.Files{CertFile: c.String("http-tls-cert"), KeyFile: c.String("http-tls-key"), CAFile: c.String("http-tls-ca")}
}

func coordinatorTLS(c *cli.Context) tlsutil.Files {
	return tlsutil.Files{CertFile: c.String("coordinator.tls-cert"), KeyFile: c.String("coordinator.tls-key"), CAFile: c.String("coordinator.tls-ca")}
}

// workerTLS is the worker's TLS configuration: TLS when insecure is false
// or any worker.tls-* file is given, plaintext (nil) otherwise.
func workerTLS(c *cli.Context) (*tls.Config, error) {
	files := tlsutil.Files{CertFile: c.String("worker.tls-cert"), KeyFile: c.String("worker.tls-key"), CAFile: c.String("worker.tls-ca")}
	if c.Bool("worker.insecure") && !files.Enabled() {
		return nil, nil
	}
	config, err := tlsutil.ClientConfig(files)
	if err != nil {
		return nil, fmt.Errorf("worker TLS: %w", err)
	}
	return config, nil
}

// gossipKeys decodes the -encrypt keys.
func gossipKeys(c *cli.Context) ([][]byte, error) {
	var keys [][]byte
	for i, encoded := range splitList(c.StringSlice("encrypt")) {
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			return nil, fmt.Errorf("-encrypt key %d is not base64", i+1)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("-encrypt key %d is %d bytes; want 16, 24 or 32 (make one with daguha keygen)", i+1, n)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "print a new gossip encryption key (32 random bytes, base64) for -encrypt; with -signing, a lease signing key for -coordinator.signing-key",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "signing", Usage: "print a lease signing key (32 random bytes, URL-safe base64) for -coordinator.signing-key instead"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("keygen takes no arguments (got %q); flags go before them", c.Args().First())
			}
			if c.Bool("signing") {
				key, err := newSigningKey()
				if err != nil {
					return err
				}
				fmt.Println(key)
				return nil
			}
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
			fmt.Println(base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
}

func writePEM(dir, name string, certPEM, keyPEM []byte) (string, string, error) {
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	for _, path := range []string{certPath, keyPath} {
		if _, err := os.Stat(path); err == nil {
			return "", "", fmt.Errorf("%s exists; not overwriting it", path)
		}
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func tlsCommand() *cli.Command {
	return &cli.Command{
		Name:  "tls",
		Usage: "make a certificate authority and certificates for TLS between workers and servers",
		Subcommands: []*cli.Command{
			{
				Name:  "ca",
				Usage: "certificate authorities",
				Subcommands: []*cli.Command{{
					Name:  "create",
					Usage: "write daguha-ca.pem and daguha-ca-key.pem",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "dir", Value: ".", Usage: "directory to write to"},
						&cli.IntFlag{Name: "days", Value: 1825, Usage: "validity in days"},
					},
					Action: func(c *cli.Context) error {
						certPEM, keyPEM, err := tlsutil.CreateCA("daguha CA", time.Duration(c.Int("days"))*24*time.Hour)
						if err != nil {
							return err
						}
						certPath, keyPath, err := writePEM(c.String("dir"), "daguha-ca", certPEM, keyPEM)
						if err != nil {
							return err
						}
						fmt.Printf("==> wrote %s and %s\n", certPath, keyPath)
						return nil
					},
				}},
			},
			{
				Name:  "cert",
				Usage: "certificates",
				Subcommands: []*cli.Command{{
					Name:  "create",
					Usage: "write a server (-server) or client (-client) certificate signed by the CA",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "server", Usage: "a server certificate (servers also use it as their client certificate)"},
						&cli.BoolFlag{Name: "client", Usage: "a client certificate, for a worker"},
						&cli.StringFlag{Name: "ca", Value: "daguha-ca.pem", Usage: "CA certificate"},
						&cli.StringFlag{Name: "key", Value: "daguha-ca-key.pem", Usage: "CA key"},
						&cli.StringFlag{Name: "name", Usage: "file name (default server or client)"},
						&cli.StringSliceFlag{Name: "dns", Value: cli.NewStringSlice("localhost"), Usage: "DNS names the server is reached at"},
						&cli.StringSliceFlag{Name: "ip", Value: cli.NewStringSlice("127.0.0.1"), Usage: "IP addresses the server is reached at"},
						&cli.StringFlag{Name: "dir", Value: ".", Usage: "directory to write to"},
						&cli.IntFlag{Name: "days", Value: 365, Usage: "validity in days"},
					},
					Action: func(c *cli.Context) error {
						if c.Bool("server") == c.Bool("client") {
							return errors.New("say -server or -client")
						}
						caCert, err := os.ReadFile(c.String("ca"))
						if err != nil {
							return err
						}
						caKey, err := os.ReadFile(c.String("key"))
						if err != nil {
							return err
						}
						options := tlsutil.CertOptions{
							Server: c.Bool("server"), Client: true,
							NotAfter: time.Now().Add(time.Duration(c.Int("days")) * 24 * time.Hour),
						}
						name := "client"
						if options.Server {
							name = "server"
							options.DNSNames = splitList(c.StringSlice("dns"))
							for _, text := range splitList(c.StringSlice("ip")) {
								ip := net.ParseIP(text)
								if ip == nil {
									return fmt.Errorf("-ip %q is not an IP address", text)
								}
								options.IPs = append(options.IPs, ip)
							}
						}
						if c.String("name") != "" {
							name = c.String("name")
						}
						options.CommonName = "daguha " + name
						certPEM, keyPEM, err := tlsutil.CreateCert(caCert, caKey, options)
						if err != nil {
							return err
						}
						certPath, keyPath, err := writePEM(c.String("dir"), name, certPEM, keyPEM)
						if err != nil {
							return err
						}
						fmt.Printf("==> wrote %s and %s\n", certPath, keyPath)
						return nil
					},
				}},
			},
		},
	}
}
