package worker

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/daguha/daguha/dispatch/worker/dockertest"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's docker executor and DAG-level container against the machine's
// real Docker engine. There is no registry to pull from: each test
// imports its own image, FROM scratch with the host's static busybox
// (Debian's busybox-static), and removes it and every container its runs
// made when it ends.

func dockerForTest(t *testing.T) *client.Client { return dockertest.Client(t) }

func busyboxImage(t *testing.T, cli *client.Client) string { return dockertest.BusyboxImage(t, cli) }

// listContainers lists the containers, running or not, labelled with
// the run.
func listContainers(cli *client.Client, runID string) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelRunID+"="+runID)})
	return got.Items, err
}

func containersOf(t *testing.T, cli *client.Client, runID string) []container.Summary {
	t.Helper()
	got, err := listContainers(cli, runID)
	if err != nil {
		t.Fatalf("listing the containers of %s: %v", runID, err)
	}
	return got
}

// runningContainers waits until n containers of the run are running (at
// most 20 s; from any goroutine).
func runningContainers(cli *client.Client, runID string, n int) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := listContainers(cli, runID)
		running := 0
		for _, c := range got {
			if c.State == container.StateRunning {
				running++
			}
		}
		if running >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanRun removes the containers of the run when the test ends.
func cleanRun(t *testing.T, cli *client.Client, runID string) {
	t.Cleanup(func() {
		for _, c := range containersOf(t, cli, runID) {
			removeContainer(cli, c.ID)
		}
	})
}

// dockerRun is a run of the DAG text (IMG in it is image, $D dir) with a
// run id of its own, whose containers are removed when the test ends.
func dockerRun(t *testing.T, cli *client.Client, dir, image, text string) *daguhav1.Run {
	t.Helper()
	run := yamlRun(t, dir, strings.ReplaceAll(text, "IMG", image), "")
	run.Id = dockertest.RandomName("docker-run-")
	cleanRun(t, cli, run.Id)
	return run
}

func TestDockerExecutorRunsTheStepInANewContainer(t *testing.T) {
	cli := dockerForTest(t)
	image := busyboxImage(t, cli)

	t.Run("output, exit code and both syntaxes", func(t *testing.T) {
		dir := t.TempDir()
		host := &fakeHost{}
		run := dockerRun(t, cli, dir, image, `env:
  - GREETING: hello there
type: graph
steps:
  - name: old
    executor:
      type: docker
      config:
        image: IMG
        pull: never
        autoRemove: true
    command: echo ${GREETING}
    output: OLD
  - name: current
    type: docker
    with:
      image: IMG
      pull: missing
      auto_remove: true
    command: sh -c 'echo out; echo err >&2'
  - name: fails
    type: docker
    with: {image: IMG, auto_remove: true}
    command: sh -c 'echo bye; exit 3'
    continueOn: {exitCode: 3}
`)
		e := testEngine(t)
		r := execute(t, context.Background(), e, run, host)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		last := host.last()
		if got := last["old"].GetOutputTail(); got != "hello there\n" {
			t.Errorf("old printed %q, want the variable's value as one word", got)
		}
		if r.outputs["OLD"] != "hello there" {
			t.Errorf("output OLD %q", r.outputs["OLD"])
		}
		// pull: missing found the image there: a pull would have failed
		// (there is no registry) and said so in the log.
		if got := last["current"].GetOutputTail(); got != "out\nerr\n" && got != "err\nout\n" {
			t.Errorf("current printed %q, want out and err", got)
		}
		f := last["fails"]
		if f.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || f.GetExitCode() != 3 || f.GetError() != "exit status 3" || f.GetOutputTail() != "bye\n" {
			t.Errorf("fails: %v, want FAILED with exit code 3 and its output", f)
		}
		if log := readFile(t, e.LogPath(run.GetId(), 1, "current")); strings.Contains(log, "pulling") {
			t.Errorf("pull: missing pulled an image that is there: %q", log)
		}
		// autoRemove: nothing left.
		if left := containersOf(t, cli, run.GetId()); len(left) != 0 {
			t.Errorf("autoRemove left containers: %v", left)
		}
	})

	t.Run("env, working dir, user and a bind", func(t *testing.T) {
		dir := t.TempDir()
		// The container's user is nobody.
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "in"), []byte("from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		host := &fakeHost{}
		run := dockerRun(t, cli, dir, image, `steps:
  - name: s
    type: docker
    with:
      image: IMG
      working_dir: /data
      volumes: ["$D:/data"]
      container:
        env: [A=1, "B=${DAG_RUN_ID}"]
        user: nobody
    command: sh -c 'echo "$A $B $(pwd) $(id -un)"; cat in; cat in > out.txt'
`)
		r := execute(t, context.Background(), testEngine(t), run, host)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		want := "1 " + run.GetId() + " /data nobody\nfrom the host\n"
		if got := host.last()["s"].GetOutputTail(); got != want {
			t.Errorf("printed %q, want %q", got, want)
		}
		if got := readFile(t, filepath.Join(dir, "out.txt")); got != "from the host\n" {
			t.Errorf("the file written through the bind holds %q", got)
		}
		// Without autoRemove the container is left, stopped, labelled
		// with the run and the step.
		left := containersOf(t, cli, run.GetId())
		if len(left) != 1 || left[0].State == container.StateRunning || left[0].Labels[LabelStep] != "s" {
			t.Errorf("left %+v, want one stopped container of step s", left)
		}
	})

	t.Run("pull never refuses an image that is not there", func(t *testing.T) {
		host := &fakeHost{}
		absent := dockertest.RandomName("daguha-test-absent:t")
		run := dockerRun(t, cli, t.TempDir(), absent, "steps:\n  - name: s\n    type: docker\n    with: {image: IMG, pull: never}\n    command: echo hi\n")
		r := execute(t, context.Background(), testEngine(t), run, host)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
		want := "image " + absent + " is not on this worker's Docker engine, and pull is never"
		if st := host.last()["s"]; st.GetError() != want {
			t.Errorf("step: %v, want the error %q", st, want)
		}
		if left := containersOf(t, cli, run.GetId()); len(left) != 0 {
			t.Errorf("containers made: %v", left)
		}
	})

	t.Run("a cancel stops the containers and removes the autoRemove ones", func(t *testing.T) {
		host := &fakeHost{}
		run := dockerRun(t, cli, t.TempDir(), image, `type: graph
steps:
  - name: removed
    type: docker
    with: {image: IMG, autoRemove: true}
    command: sleep 300
  - name: kept
    type: docker
    with: {image: IMG}
    command: sleep 300
`)
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		go func() {
			runningContainers(cli, run.GetId(), 2)
			cancel(errCancelled)
		}()
		r := execute(t, ctx, testEngine(t), run, host)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_CANCELLED, "")
		wantStatus(t, host, map[string]daguhav1.StepStatus{"removed": daguhav1.StepStatus_STEP_STATUS_CANCELLED, "kept": daguhav1.StepStatus_STEP_STATUS_CANCELLED})
		left := containersOf(t, cli, run.GetId())
		if len(left) != 1 || left[0].Labels[LabelStep] != "kept" || left[0].State == container.StateRunning {
			t.Errorf("after the cancel: %+v, want only kept's container, stopped", left)
		}
		if r.took > 15*time.Second {
			t.Errorf("the cancel took %s", r.took)
		}
	})

	t.Run("containerName executes in a running container", func(t *testing.T) {
		name := dockertest.RandomName("daguha-test-running-")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
			Config: &container.Config{Image: image, Cmd: []string{"sh", "-c", "echo ready > /tmp/mark; while :; do sleep 1; done"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeContainer(cli, created.ID) })
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		host := &fakeHost{}
		run := dockerRun(t, cli, t.TempDir(), image, `steps:
  - name: in
    executor:
      type: docker
      config:
        containerName: `+name+`
        exec: {workingDir: /tmp, env: [X=exec], user: nobody}
    command: sh -c 'echo "$X $(pwd) $(id -un)"; cat mark'
  - name: failing
    type: docker
    with: {container_name: `+name+`}
    command: sh -c 'exit 4'
`)
		r := execute(t, context.Background(), testEngine(t), run, host)
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
		if got := host.last()["in"].GetOutputTail(); got != "exec /tmp nobody\nready\n" {
			t.Errorf("in printed %q", got)
		}
		if f := host.last()["failing"]; f.GetExitCode() != 4 || f.GetError() != "exit status 4" {
			t.Errorf("failing: %v, want exit code 4", f)
		}
	})
}

// A DAG's container: every command step of the run is executed in the
// one container, which goes when the run ends; a file one step writes
// there the next reads, and the host never sees it.
func TestDagContainerRunsEveryCommandStepInOneContainer(t *testing.T) {
	cli := dockerForTest(t)
	image := busyboxImage(t, cli)
	dir := t.TempDir()
	shared := dockertest.RandomName("/tmp/daguha-shared-")
	host := &fakeHost{}
	run := dockerRun(t, cli, dir, image, `container:
  image: IMG
  pullPolicy: never
  env: [WHO=box]
  workingDir: /tmp
env:
  - GREETING: hello there
steps:
  - name: write
    command: sh -c 'echo "$WHO $GREETING" > `+shared+`; cat /etc/hostname'
    output: FIRST
  - name: read
    command: [cat `+shared+`, pwd, cat /etc/hostname]
    dir: /bin
  - name: timed-out
    command: sleep 301
    timeoutSec: 1
    continueOn: {failure: true}
  - name: gone
    command: sh -c 'ps -o args | grep -q "^sleep 3600" && ! ps -o args | grep -q "^sleep 301"'
handlerOn:
  exit:
    command: echo ${GREETING}
`)
	r := execute(t, context.Background(), testEngine(t), run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	last := host.last()
	first := strings.TrimSpace(last["write"].GetOutputTail())
	want := "box hello there\n/bin\n" + first + "\n"
	if got := last["read"].GetOutputTail(); first == "" || got != want {
		t.Errorf("read printed %q, want %q: the file and the host name of write's container", got, want)
	}
	if _, err := os.Stat(shared); err == nil {
		t.Errorf("%s is on the host: the steps did not run in the container", shared)
	}
	if st := last["timed-out"]; st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || !strings.Contains(st.GetError(), "timed out") {
		t.Errorf("timed-out: %v", st)
	}
	if st := last["gone"]; st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
		t.Errorf("the timed-out command still runs in the container: %v", st)
	}
	if st := last["onExit"]; st.GetOutputTail() != "hello there\n" {
		t.Errorf("the exit handler: %v", st)
	}
	if left := containersOf(t, cli, run.GetId()); len(left) != 0 {
		t.Errorf("the run's container is left: %+v", left)
	}
}

// A DAG's container that cannot start fails each step that needs it with
// the reason; a run cancelled while its container runs removes it.
func TestDagContainerFailuresAndCancel(t *testing.T) {
	cli := dockerForTest(t)
	image := busyboxImage(t, cli)

	host := &fakeHost{}
	absent := dockertest.RandomName("daguha-test-absent:t")
	run := dockerRun(t, cli, t.TempDir(), absent, "container: {image: IMG, pull_policy: never}\nsteps:\n  - echo a\n  - echo b\n")
	r := execute(t, context.Background(), testEngine(t), run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
	if st := host.last()["cmd_1"]; !strings.Contains(st.GetError(), "the DAG's container: image "+absent+" is not on this worker's Docker engine") {
		t.Errorf("cmd_1: %v", st)
	}

	host = &fakeHost{}
	run = dockerRun(t, cli, t.TempDir(), image, "container: {image: IMG, startup: entrypoint}\nsteps:\n  - echo a\n")
	r = execute(t, context.Background(), testEngine(t), run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
	if st := host.last()["cmd_1"]; !strings.Contains(st.GetError(), "the DAG's container: creating a container of "+image) {
		t.Errorf("an image without a command of its own, started by its entrypoint: %v", st)
	}
	if left := containersOf(t, cli, run.GetId()); len(left) != 0 {
		t.Errorf("the failed container is left: %+v", left)
	}

	host = &fakeHost{}
	run = dockerRun(t, cli, t.TempDir(), image, "container: {image: IMG}\nsteps:\n  - sleep 300\n")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		runningContainers(cli, run.GetId(), 1)
		cancel(errCancelled)
	}()
	r = execute(t, ctx, testEngine(t), run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_CANCELLED, "")
	if left := containersOf(t, cli, run.GetId()); len(left) != 0 {
		t.Errorf("the cancelled run's container is left: %+v", left)
	}
}

// A worker says it runs docker steps only while its Docker engine (here
// DOCKER_HOST) answers a ping: a socket nobody listens on is not one, a
// server answering /_ping is.
func TestDockerIsAdvertisedOnlyWhereItsEngineAnswers(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "none.sock"))
	if err := (dockerExecutor{}).probe(context.Background()); err == nil {
		t.Fatal("the probe of a socket nobody listens on passed")
	}
	if kinds := Executors(context.Background()); slices.Contains(kinds, kindDocker) {
		t.Errorf("advertised %v without an engine", kinds)
	}

	sock := filepath.Join(dir, "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	engine := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Api-Version", "1.41")
		_, _ = io.WriteString(w, "OK")
	})}
	go func() { _ = engine.Serve(l) }()
	t.Cleanup(func() { _ = engine.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	if kinds := Executors(context.Background()); !slices.Contains(kinds, kindDocker) || !slices.Contains(kinds, kindHTTP) || slices.Contains(kinds, kindContainer) {
		t.Errorf("advertised %v with an engine that answers, want docker among Dagu's executors (and not the internal container kind)", kinds)
	}
}
