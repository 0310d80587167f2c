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
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/valid"
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

// certRequest turns the flags of `tls cert create` into the certificate
// to make and its file name.
func certRequest(c *cli.Context) (tlsutil.CertOptions, string, error) {
	if c.Bool("server") == c.Bool("client") {
		return tlsutil.CertOptions{}, "", errors.New("say -server (with -node NAME) or -client (with -worker-id ID)")
	}
	options := tlsutil.CertOptions{
		Server: c.Bool("server"), Client: true,
		NotAfter: time.Now().Add(time.Duration(c.Int("days")) * 24 * time.Hour),
	}
	id := identity.Identity{Cluster: c.String("cluster")}
	if options.Server {
		if c.String("worker-id") != "" || len(c.StringSlice("label")) > 0 {
			return options, "", errors.New("-worker-id and -label are for worker certificates (-client)")
		}
		id.Role, id.Name = identity.RoleServer, c.String("node")
		if id.Name == "" {
			return options, "", errors.New("-server needs -node NAME: the node name the server runs with (its -node), which the certificate proves")
		}
		options.DNSNames = splitList(c.StringSlice("dns"))
		for _, text := range splitList(c.StringSlice("ip")) {
			ip := net.ParseIP(text)
			if ip == nil {
				return options, "", fmt.Errorf("-ip %q is not an IP address", text)
			}
			options.IPs = append(options.IPs, ip)
		}
	} else {
		if c.String("node") != "" {
			return options, "", errors.New("-node is for server certificates (-server)")
		}
		id.Role, id.Name = identity.RoleWorker, c.String("worker-id")
		if id.Name == "" {
			return options, "", errors.New("-client needs -worker-id ID: the worker id the worker runs with (its -worker-id), the only one it may act as")
		}
		for _, text := range c.StringSlice("label") {
			labels, err := valid.ParseLabels(text)
			if err != nil {
				return options, "", fmt.Errorf("-label: %w", err)
			}
			for k, v := range labels {
				if _, dup := id.Labels[k]; dup {
					return options, "", fmt.Errorf("-label %q is given twice", k)
				}
				if id.Labels == nil {
					id.Labels = map[string]string{}
				}
				id.Labels[k] = v
			}
		}
	}
	if id.Cluster == "" || strings.ContainsAny(id.Cluster, "/?#@:") {
		return options, "", fmt.Errorf("-cluster %q: want a name without / ? # @ :", id.Cluster)
	}
	if strings.ContainsAny(id.Name, "/?#") {
		return options, "", fmt.Errorf("name %q: a node name or worker id must not contain / ? #", id.Name)
	}
	// What is written must read back as the same identity.
	if parsed, err := identity.Parse(id.String()); err != nil || parsed.String() != id.String() || parsed.Name != id.Name {
		return options, "", fmt.Errorf("%s cannot be written into a certificate: %v", id, err)
	}
	options.Identity = &id
	options.CommonName = fmt.Sprintf("daguha %s %s", id.Role, id.Name)
	name := c.String("name")
	if name == "" {
		name = id.Name
	}
	return options, name, nil
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
					Name: "create",
					Usage: "write a server (-server -node NAME) or worker (-client -worker-id ID) certificate signed by the CA; " +
						"it carries its role and name, which the servers check",
					Flags: []cli.Flag{
						&cli.BoolFlag{Name: "server", Usage: "a server certificate (servers also use it as their client certificate towards each other)"},
						&cli.BoolFlag{Name: "client", Usage: "a worker's client certificate"},
						&cli.StringFlag{Name: "node", Usage: "the server's node name, as its -node (with -server)"},
						&cli.StringFlag{Name: "worker-id", Usage: "the worker's id, as its -worker-id (with -client): the only id it may act as"},
						&cli.StringSliceFlag{Name: "label", Usage: "a worker label k=v the certificate vouches for (with -client; repeat for several): servers take the values of their -certified-labels keys from here only"},
						&cli.StringFlag{Name: "cluster", Value: identity.DefaultCluster, Usage: "the cluster's name, written into the certificate's identity"},
						&cli.StringFlag{Name: "ca", Value: "daguha-ca.pem", Usage: "CA certificate"},
						&cli.StringFlag{Name: "key", Value: "daguha-ca-key.pem", Usage: "CA key"},
						&cli.StringFlag{Name: "name", Usage: "file name (default: the node name or the worker id)"},
						&cli.StringSliceFlag{Name: "dns", Value: cli.NewStringSlice("localhost"), Usage: "DNS names the server is reached at"},
						&cli.StringSliceFlag{Name: "ip", Value: cli.NewStringSlice("127.0.0.1"), Usage: "IP addresses the server is reached at"},
						&cli.StringFlag{Name: "dir", Value: ".", Usage: "directory to write to"},
						&cli.IntFlag{Name: "days", Value: 365, Usage: "validity in days"},
					},
					Action: func(c *cli.Context) error {
						options, name, err := certRequest(c)
						if err != nil {
							return err
						}
						caCert, err := os.ReadFile(c.String("ca"))
						if err != nil {
							return err
						}
						caKey, err := os.ReadFile(c.String("key"))
						if err != nil {
							return err
						}
						certPEM, keyPEM, err := tlsutil.CreateCert(caCert, caKey, options)
						if err != nil {
							return err
						}
						certPath, keyPath, err := writePEM(c.String("dir"), name, certPEM, keyPEM)
						if err != nil {
							return err
						}
						fmt.Printf("==> wrote %s and %s for %s\n", certPath, keyPath, options.Identity)
						return nil
					},
				}},
			},
		},
	}
}
