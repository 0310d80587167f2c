package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	os.Exit(code)
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Disable bool `yaml:"disable"`
		} `yaml:"healthcheck"`
		Deploy struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestComposeFile checks the Compose file without Docker: three servers
// that expect three and join each other, each on its own named volume;
// the seed's worker pools with replicas; and the DAGs directory holding
// the seed's two-document example, which daguha's DAG parser accepts.
func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	servers := []string{"server1", "server2", "server3"}
	var seeds []string
	for _, s := range servers {
		seeds = append(seeds, s+":8301")
	}
	for _, name := range servers {
		s, ok := f.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		for _, want := range []string{"-server", "-bootstrap-expect=3", "-node=" + name, "-join=" + strings.Join(seeds, ","), "-dags=/etc/dagu/dags"} {
			if !contains(s.Command, want) {
				t.Errorf("%s command %v lacks %s", name, s.Command, want)
			}
		}
		dataVolume := ""
		for _, v := range s.Volumes {
			if strings.HasSuffix(v, ":/var/lib/daguha/data") {
				dataVolume = strings.TrimSuffix(v, ":/var/lib/daguha/data")
			}
		}
		if _, declared := f.Volumes[dataVolume]; !declared {
			t.Errorf("%s keeps its Raft state on %q, not a declared named volume", name, dataVolume)
		}
		if !contains(s.Volumes, "./dags:/etc/dagu/dags:ro") {
			t.Errorf("%s does not mount ./dags", name)
		}
		if s.Healthcheck.Disable {
			t.Errorf("%s turns off the image's health check", name)
		}
		// Without TLS, servers prove themselves to each other with the
		// cluster token.
		if s.Environment["DAGUHA_CLUSTER_TOKEN"] == "" || s.Environment["DAGU_COORDINATOR_SIGNING_KEY"] == "" {
			t.Errorf("%s has no cluster token or signing key: %v", name, s.Environment)
		}
	}
	for name, labels := range map[string]string{"worker-gpu": "gpu=true", "worker-cpu": "cpu-only=true"} {
		w, ok := f.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if w.Deploy.Replicas < 2 {
			t.Errorf("%s has %d replicas; the seed runs a pool", name, w.Deploy.Replicas)
		}
		if !strings.Contains(strings.Join(w.Command, " "), labels) {
			t.Errorf("%s command %v lacks the seed's label %s", name, w.Command, labels)
		}
		if !w.Healthcheck.Disable {
			t.Errorf("%s keeps the servers' health check, which a worker would always fail", name)
		}
		// Workers run user code: they never hold the servers' secrets.
		for _, secret := range []string{"DAGUHA_CLUSTER_TOKEN", "DAGU_COORDINATOR_SIGNING_KEY"} {
			if _, held := w.Environment[secret]; held {
				t.Errorf("%s holds %s", name, secret)
			}
		}
	}

	example := "compose/dags/distributed-pipeline.yaml"
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := dagfile.Parse(example, src)
	if err != nil {
		t.Fatalf("the example DAG does not parse: %v", err)
	}
	var names []string
	for _, d := range parsed.Dags {
		names = append(names, d.GetName())
	}
	if strings.Join(names, ",") != "distributed-pipeline,train-model" {
		t.Errorf("example DAGs %v; want the seed's distributed-pipeline and its local train-model", names)
	}
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// composeCommand returns how to run Compose here ("docker compose" or
// docker-compose), or skips the test saying why.
func composeCommand(t *testing.T) []string {
	t.Helper()
	dockerEngine(t)
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return []string{path}
	}
	t.Skip("neither docker compose nor docker-compose is installed: install one (Debian: apt-get install docker-compose)")
	return nil
}

// imageShellMissing returns why make image cannot give the image a shell
// here, in make's own words, or "" when it can: make image-shell finds a
// static busybox or installs busybox-static (root and apt-get), as make
// image does first. vars are make variables (BUSYBOX=..., APT_GET=...).
func imageShellMissing(t *testing.T, root string, vars ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		return "make is not installed: install make (as root: apt-get install make)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-s", "--no-print-directory", "image-shell"}, vars...)...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// The last line make's recipe writes is the reason; make's own
		// "*** [Makefile:N: image-shell] Error 1" follows it.
		var reason string
		for _, line := range strings.Split(stderr.String(), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "make: ***") && !strings.HasPrefix(line, "make[") {
				reason = line
			}
		}
		if reason == "" {
			reason = fmt.Sprintf("make image-shell: %v", err)
		}
		return reason
	}
	return ""
}

// repoRoot is the repository's root, where the Makefile is.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Without a static busybox and without a way to install one, make image
// builds nothing and fails naming busybox-static, and the Compose test's
// skip reason is that same line.
func TestImageWithoutStaticBusyboxFailsNamingThePackage(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: install make (as root: apt-get install make)")
	}
	root := repoRoot(t)
	stage := filepath.Join(t.TempDir(), "image")
	// No busybox given, none looked for, and an apt-get that always fails.
	noShell := []string{"BUSYBOX=", "BUSYBOX_PATHS=", "APT_GET=false"}
	out, err := run(t, root, nil, 5*time.Minute, "make", append([]string{"image", "IMAGE=daguha:no-shell-test", "IMAGE_DIR=" + stage}, noShell...)...)
	if err == nil {
		t.Fatalf("make image without a static busybox succeeded:\n%s", out)
	}
	if !strings.Contains(out, "install busybox-static") {
		t.Fatalf("make image's failure does not name busybox-static:\n%s", out)
	}
	if _, err := os.Stat(stage); !os.IsNotExist(err) {
		t.Errorf("make image staged %s before finding a shell (stat: %v)", stage, err)
	}
	if strings.Contains(out, "docker build") {
		t.Errorf("make image ran docker build without a shell:\n%s", out)
	}

	reason := imageShellMissing(t, root, noShell...)
	if !strings.Contains(reason, "install busybox-static") {
		t.Fatalf("the Compose test would skip with %q, which does not name busybox-static", reason)
	}
	if !strings.Contains(out, reason) {
		t.Errorf("the Compose test's skip reason %q is not make image's failure:\n%s", reason, out)
	}

	// A BUSYBOX that is not static is refused by name, not copied.
	notStatic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls on PATH to stand for a dynamic executable")
	}
	reason = imageShellMissing(t, root, "BUSYBOX="+notStatic, "APT_GET=false")
	if reason == "" {
		t.Skipf("%s is a static executable here: no dynamic one to try", notStatic)
	}
	if !strings.Contains(reason, "BUSYBOX="+notStatic+" is not a static executable") {
		t.Errorf("a dynamic BUSYBOX gave %q; want it refused by name", reason)
	}
}

func run(t *testing.T, dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// testImage is the tag the tests give make image's image.
const testImage = "daguha:compose-test"

// dockerEngine skips the test unless Docker is installed, turned on for
// tests and answering.
func dockerEngine(t *testing.T) {
	t.Helper()
	if os.Getenv("DAGUHA_DOCKER_TESTS") == "0" {
		t.Skip("DAGUHA_DOCKER_TESTS=0: the Docker tests are turned off")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed: cannot build the image; install Docker Engine (Debian: apt-get install docker.io)")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("the Docker engine does not answer: %v\n%s", err, out)
	}
}

// buildImage runs make image as testImage, or skips the test where make
// image cannot give the image a shell, in make's words.
func buildImage(t *testing.T, root string) string {
	t.Helper()
	if why := imageShellMissing(t, root); why != "" {
		t.Skip(why)
	}
	if out, err := run(t, root, nil, 10*time.Minute, "make", "image", "IMAGE="+testImage); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	return testImage
}

// The worker image of docs/deployment.md (ops/deploy/worker-image): daguha
// on top of a team's base image. The base here is made in the test, with
// a tool of its own; in the built image that tool, daguha and a shell
// answer, as daguha's user.
func TestWorkerImageOnATeamsBase(t *testing.T) {
	dockerEngine(t)
	root := repoRoot(t)
	image := buildImage(t, root)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	base := "daguha-team-base-test:" + hex.EncodeToString(suffix)
	worker := "daguha-worker-test:" + hex.EncodeToString(suffix)
	t.Cleanup(func() {
		if out, err := run(t, root, nil, time.Minute, "docker", "rmi", "-f", worker, base); err != nil {
			t.Errorf("docker rmi: %v\n%s", err, out)
		}
	})

	baseDir := t.TempDir()
	baseFile := "FROM " + image + "\nUSER 0\nRUN printf '#!/bin/sh\\necho team tool here\\n' > /bin/team-tool && chmod 755 /bin/team-tool\n"
	if err := os.WriteFile(filepath.Join(baseDir, "Dockerfile"), []byte(baseFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, baseDir, nil, 5*time.Minute, "docker", "build", "-t", base, "."); err != nil {
		t.Fatalf("docker build of the team's base: %v\n%s", err, out)
	}
	if out, err := run(t, root, nil, 5*time.Minute, "docker", "build", "--build-arg", "DAGUHA_IMAGE="+image, "--build-arg", "BASE="+base,
		"-t", worker, "ops/deploy/worker-image"); err != nil {
		t.Fatalf("docker build of ops/deploy/worker-image: %v\n%s", err, out)
	}
	out, err := run(t, root, nil, 2*time.Minute, "docker", "run", "--rm", "--entrypoint", "sh", worker, "-c",
		"team-tool && daguha --version && id -u && touch /var/lib/daguha/data/written && echo $DAGU_HOME")
	if err != nil {
		t.Fatalf("the worker image: %v\n%s", err, out)
	}
	t.Logf("sh -c in the worker image:\n%s", out)
	// make image stamps VERSION into the binary: daguha --version prints it.
	release, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"team tool here", "version: " + strings.TrimSpace(string(release)) + "\n", "65532", "/var/lib/daguha"} {
		if !strings.Contains(out, want) {
			t.Errorf("the worker image's answer lacks %q:\n%s", want, out)
		}
	}
	entry, err := run(t, root, nil, time.Minute, "docker", "inspect", "-f", "{{json .Config.Entrypoint}}", worker)
	if err != nil || entry != `["/usr/local/bin/daguha"]` {
		t.Errorf("the worker image's entrypoint is %s (%v); want daguha", entry, err)
	}
}

// TestComposeClusterSurvivesLeaderLoss builds the image (make image),
// brings the Compose file up under a project name of its own, runs the
// seed's DAG example, stops the leader's container, runs the example
// again through another server, and takes everything down, checking
// that no container, network or volume of the project is left.
func TestComposeClusterSurvivesLeaderLoss(t *testing.T) {
	compose := composeCommand(t)
	root := repoRoot(t)
	dir := filepath.Join(root, "ops", "deploy", "compose")
	image := buildImage(t, root)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	project := "daguhatest" + hex.EncodeToString(suffix)
	// Published on loopback only, on ports Docker picks.
	env := []string{"DAGUHA_IMAGE=" + image, "COMPOSE_PROJECT_NAME=" + project,
		"DAGUHA_SERVER1_HTTP=127.0.0.1::8080", "DAGUHA_SERVER2_HTTP=127.0.0.1::8080", "DAGUHA_SERVER3_HTTP=127.0.0.1::8080"}
	composeRun := func(timeout time.Duration, args ...string) (string, error) {
		full := append(append([]string{}, compose[1:]...), append([]string{"-p", project}, args...)...)
		return run(t, dir, env, timeout, compose[0], full...)
	}
	down := func() {
		if out, err := composeRun(3*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := composeRun(time.Minute, "logs", "--no-color", "--tail", "30")
			t.Logf("logs of %s:\n%s", project, out)
		}
		down()
	})
	started := time.Now()
	if out, err := composeRun(5*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	api := map[string]string{}
	for _, s := range []string{"server1", "server2", "server3"} {
		out, err := composeRun(time.Minute, "port", s, "8080")
		if err != nil {
			t.Fatalf("compose port %s: %v\n%s", s, err, out)
		}
		api[s] = "http://" + strings.TrimSpace(out)
	}

	// The cluster forms, the image's health check (daguha health) turns
	// every server healthy, and all seven workers register.
	var leader string
	clustertest.WaitFor(t, 3*time.Minute, "a leader, three healthy server containers and seven healthy workers", func() (bool, string) {
		server1 := client.New(api["server1"], client.Options{Timeout: 3 * time.Second})
		l, err := server1.Leader(context.Background())
		if err != nil || l.Leader == "" {
			return false, fmt.Sprintf("leader %q, %v", l.Leader, err)
		}
		leader = l.Leader
		for _, s := range []string{"server1", "server2", "server3"} {
			id, _ := composeRun(30*time.Second, "ps", "-q", s)
			health, _ := run(t, dir, nil, 30*time.Second, "docker", "inspect", "-f", "{{.State.Health.Status}}", strings.TrimSpace(id))
			if health != "healthy" {
				return false, s + " container health: " + health
			}
		}
		workers, err := server1.Workers(context.Background(), false)
		if err != nil {
			return false, err.Error()
		}
		healthy := 0
		for _, w := range workers.Workers {
			if w.HealthStatus == "HEALTHY" {
				healthy++
			}
		}
		return healthy == 7, fmt.Sprintf("%d of 7 workers healthy", healthy)
	})
	t.Logf("cluster of 3 servers and 7 workers up %s after compose up; leader %s", time.Since(started).Round(time.Second), leader)

	bin := clustertest.BuildBinary(t)
	runExample := func(server string) {
		t.Helper()
		var out string
		// Each server pushes ./dags at start; the DAG may not be stored yet.
		clustertest.WaitFor(t, 2*time.Minute, "the seed's example to run to success through "+server, func() (bool, string) {
			var err error
			out, err = run(t, dir, nil, 90*time.Second, bin, "enqueue", "-address="+api[server], "--wait", "distributed-pipeline")
			return err == nil && strings.Contains(out, "succeeded"), fmt.Sprintf("%v: %s", err, out)
		})
		t.Logf("through %s:\n%s", server, out)
	}
	runExample(leader)

	began := time.Now()
	if out, err := composeRun(time.Minute, "stop", leader); err != nil {
		t.Fatalf("stop %s: %v\n%s", leader, err, out)
	}
	t.Logf("stopped the leader %s's container in %s", leader, time.Since(began).Round(time.Millisecond))
	survivor := "server1"
	if leader == survivor {
		survivor = "server2"
	}
	runExample(survivor)

	down()
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		args := append(kind, "--filter", "label=com.docker.compose.project="+project)
		out, err := run(t, dir, nil, 30*time.Second, "docker", args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if out != "" {
			t.Errorf("after compose down, docker %s still lists:\n%s", strings.Join(kind, " "), out)
		}
	}
}
