package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/tlsutil"
)

// runTLS runs `daguha tls ARGS...` in this process, in dir.
func runTLS(t *testing.T, dir string, args ...string) error {
	t.Helper()
	app := &cli.App{Name: "daguha", Commands: []*cli.Command{tlsCommand()}}
	return app.Run(append([]string{"daguha", "tls"}, append(args, "-dir="+dir)...))
}

// `daguha tls cert create` writes certificates that carry their role
// and name (and a worker's vouched labels), named after them; it refuses
// a certificate without a name.
func TestTLSCertCreateWritesIdentities(t *testing.T) {
	dir := t.TempDir()
	if err := runTLS(t, dir, "ca", "create"); err != nil {
		t.Fatal(err)
	}
	ca := []string{"-ca=" + filepath.Join(dir, "daguha-ca.pem"), "-key=" + filepath.Join(dir, "daguha-ca-key.pem")}
	made := map[string][]string{
		"daguha://prod/server/server1":               {"cert", "create", "-server", "-node=server1", "-cluster=prod"},
		"daguha://daguha/worker/gpu-7?tier=secure":   {"cert", "create", "-client", "-worker-id=gpu-7", "-label=tier=secure"},
		"daguha://daguha/worker/cpu-1?a=1&b=2":       {"cert", "create", "-client", "-worker-id=cpu-1", "-label=a=1", "-label=b=2", "-name=cpu"},
		"daguha://daguha/server/host.example@10.0.0": {"cert", "create", "-server", "-node=host.example@10.0.0"},
	}
	files := map[string]string{
		"daguha://prod/server/server1":               "server1.pem",
		"daguha://daguha/worker/gpu-7?tier=secure":   "gpu-7.pem",
		"daguha://daguha/worker/cpu-1?a=1&b=2":       "cpu.pem",
		"daguha://daguha/server/host.example@10.0.0": "host.example@10.0.0.pem",
	}
	for want, args := range made {
		if err := runTLS(t, dir, append(args, ca...)...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		id, err := tlsutil.Identity(filepath.Join(dir, files[want]))
		if err != nil || id.String() != want {
			t.Errorf("%v wrote %s: %v, %v; want %s", args, files[want], id, err, want)
		}
		if _, err := os.Stat(strings.TrimSuffix(filepath.Join(dir, files[want]), ".pem") + "-key.pem"); err != nil {
			t.Errorf("%v wrote no key: %v", args, err)
		}
	}
	server, err := tlsutil.Identity(filepath.Join(dir, "server1.pem"))
	if err != nil || server.Role != identity.RoleServer || server.Name != "server1" {
		t.Fatalf("server certificate: %+v %v", server, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-server"}, "-server needs -node NAME"},
		{[]string{"-client"}, "-client needs -worker-id ID"},
		{[]string{"-server", "-node=a", "-client"}, "say -server"},
		{[]string{"-server", "-node=a/b"}, "must not contain"},
		{[]string{"-server", "-node=a", "-worker-id=b"}, "for worker certificates"},
		{[]string{"-client", "-worker-id=w", "-node=a"}, "for server certificates"},
		{[]string{"-client", "-worker-id=w", "-label=novalue"}, "want key=value"},
		{[]string{"-server", "-node=x", "-cluster=a/b"}, "-cluster"},
	} {
		err := runTLS(t, dir, append(append([]string{"cert", "create"}, c.args...), ca...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
