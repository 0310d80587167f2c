// Package dockertest gives tests the machine's Docker engine and an image
// to run there: no registry can be reached, so the image is imported here,
// FROM scratch around the host's static busybox (Debian's busybox-static).
// Tests that use it skip, naming what to install, where either is missing.
// It is imported by tests only (docs/architecture.md).
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Client is a client of the machine's Docker engine (DOCKER_HOST, else
// the default socket), closed when the test ends; the test skips when the
// engine does not answer a ping in 2 s, or when DAGUHA_DOCKER_TESTS=0.
func Client(t testing.TB) *client.Client {
	t.Helper()
	if os.Getenv("DAGUHA_DOCKER_TESTS") == "0" {
		t.Skip("DAGUHA_DOCKER_TESTS=0: the Docker tests are turned off")
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Skipf("no Docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Skipf("the Docker engine does not answer at %s (%v): install and start Docker Engine (Debian: apt-get install docker.io)", cli.DaemonHost(), err)
	}
	return cli
}

// StaticBusybox is the path of a static busybox on this machine, or a
// skip naming the package that has one.
func StaticBusybox(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Skip("no static busybox for the test image: install busybox-static (as root: apt-get install busybox-static)")
	return ""
}

// RandomName is prefix and 8 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// BusyboxImage imports an image of the static busybox (/bin/busybox and a
// link for each applet, /tmp, an /etc/passwd with root and nobody,
// PATH=/bin) under a name of its own, and removes it when the test ends.
func BusyboxImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	bb := StaticBusybox(t)
	binary, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", bb, err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, dir := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"tmp/", 0o1777}, {"etc/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir.name, Mode: dir.mode}); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{"bin/busybox": binary, "etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")}
	for _, name := range []string{"bin/busybox", "etc/passwd"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ref := RandomName("daguha-test-busybox:t")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &layer, SourceName: "-"}, ref, client.ImageImportOptions{Changes: []string{"ENV PATH=/bin"}})
	if err != nil {
		t.Fatalf("importing the busybox image: %v", err)
	}
	answer, _ := io.ReadAll(resp)
	resp.Close()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("removing image %s: %v", ref, err)
		}
	})
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("the imported image %s is not there (%v): %s", ref, err, answer)
	}
	return ref
}
