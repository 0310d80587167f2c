package dagfile

import (
	"encoding/json"
	"reflect"
	"testing"
)

func dockerSettingsOf(t *testing.T, text string) DockerSettings {
	t.Helper()
	step := mustParse(t, "x.yaml", text).Dags[0].GetSteps()[0]
	if step.GetExecutor() != "docker" {
		t.Fatalf("executor %q, want docker", step.GetExecutor())
	}
	var s DockerSettings
	if err := json.Unmarshal([]byte(step.GetExecutorConfigJson()), &s); err != nil {
		t.Fatalf("settings %q: %v", step.GetExecutorConfigJson(), err)
	}
	return s
}

// Dagu 1.x's executor/config and current Dagu's type/with, with each's
// spelling of the same settings, give the same settings.
func TestDockerStepReadsBothSyntaxes(t *testing.T) {
	old := dockerSettingsOf(t, `steps:
  - name: s
    executor:
      type: docker
      config:
        image: busybox:${TAG}
        pull: false
        autoRemove: true
        container:
          env: [A=1, B=two words]
          workingDir: /work
          user: "1000"
          entrypoint: [/bin/sh, -c]
        host:
          binds: [/data:/data:ro]
          memory: 536870912
          cpuShares: 512
          networkMode: none
    command: echo "hello world"
`)
	current := dockerSettingsOf(t, `steps:
  - name: s
    type: docker
    with:
      image: busybox:${TAG}
      pull: never
      auto_remove: true
      working_dir: /work
      volumes: [/data:/data:ro]
      container:
        env: {A: 1, B: two words}
        user: 1000
        entrypoint: /bin/sh -c
      host:
        memory: 536870912
        cpu_shares: 512
        network_mode: none
    command: echo "hello world"
`)
	want := DockerSettings{Image: "busybox:${TAG}", Pull: "never", AutoRemove: true, Env: []string{"A=1", "B=two words"},
		WorkingDir: "/work", User: "1000", Entrypoint: []string{"/bin/sh", "-c"}, Binds: []string{"/data:/data:ro"},
		Memory: 536870912, CPUShares: 512, NetworkMode: "none"}
	for name, got := range map[string]DockerSettings{"1.x": old, "current": current} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestDockerPullPolicyForms(t *testing.T) {
	for written, want := range map[string]string{"always": "always", "missing": "missing", "never": "never", "Never": "never",
		"true": "always", "false": "never", `"true"`: "always", `"false"`: "never", `""`: ""} {
		s := dockerSettingsOf(t, "steps:\n  - name: s\n    type: docker\n    with: {image: a, pull: "+written+"}\n")
		if s.Pull != want {
			t.Errorf("pull: %s read as %q, want %q", written, s.Pull, want)
		}
	}
	wantProblem(t, "steps:\n  - name: s\n    type: docker\n    with: {image: a, pull: sometimes}\n", 4, "steps[0].with.pull", "want always, missing or never")
}

// Without an image, containerName is a running container the step's
// command is executed in, with the exec settings.
func TestDockerStepExecutesInARunningContainer(t *testing.T) {
	s := dockerSettingsOf(t, `steps:
  - name: s
    executor:
      type: docker
      config:
        containerName: app
        exec: {user: root, workingDir: /app, env: [X=1]}
    command: ./maintenance.sh
`)
	want := DockerSettings{ContainerName: "app", Exec: &DockerExec{User: "root", WorkingDir: "/app", Env: []string{"X=1"}}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestBadDockerSteps(t *testing.T) {
	const head = "steps:\n  - name: s\n    "
	for _, tc := range []struct {
		name, text string
		line       int
		key, msg   string
	}{
		{"neither image nor container", head + "type: docker\n    command: echo\n", 3, "steps[0].type", "needs image (a new container) or containerName"},
		{"empty settings", head + "type: docker\n    with: {pull: never}\n    command: echo\n", 4, "steps[0].with", "needs image"},
		{"settings not a map", head + "type: docker\n    with: busybox\n    command: echo\n", 4, "steps[0].with", "want a map of the docker executor's settings"},
		{"script", head + "type: docker\n    with: {image: a}\n    script: echo hi\n", 5, "steps[0].script", "script is not supported"},
		{"several commands", head + "type: docker\n    with: {image: a}\n    command: [echo a, echo b]\n", 5, "steps[0].command", "one command line"},
		{"open quote", head + "type: docker\n    with: {image: a}\n    command: echo 'hi\n", 5, "steps[0].command", "not closed"},
		{"unknown container key", head + "type: docker\n    with: {image: a, container: {hostname: h}}\n", 4, "steps[0].with.container.hostname", `unknown key "hostname"`},
		{"exec with an image", head + "type: docker\n    with: {image: a, exec: {user: root}}\n", 4, "steps[0].with.exec", "containerName without image"},
		{"exec without a command", head + "type: docker\n    with: {containerName: app}\n", 3, "steps[0].type", "needs a command"},
		{"working dir twice", head + "type: docker\n    with: {image: a, working_dir: /a, container: {workingDir: /b}}\n", 4, "steps[0].with.working_dir", "already given"},
		{"memory not a number", head + "type: docker\n    with: {image: a, host: {memory: 1g}}\n", 4, "steps[0].with.host.memory", "want a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.text, tc.line, tc.key, tc.msg) })
	}
}

func containerOf(t *testing.T, text string) DockerSettings {
	t.Helper()
	dag := mustParse(t, "x.yaml", text).Dags[0]
	var s DockerSettings
	if err := json.Unmarshal([]byte(dag.GetContainerJson()), &s); err != nil {
		t.Fatalf("container %q: %v", dag.GetContainerJson(), err)
	}
	return s
}

// A DAG's container in current Dagu's keys (snake_case or camelCase).
func TestDagContainerForms(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       DockerSettings
	}{
		{"image", `container:
  image: busybox
  name: box
  pull_policy: never
  env: [A=1]
  volumes: [/data:/data]
  user: "1000"
  working_dir: /w
  platform: linux/amd64
  network: none
steps:
  - echo hi
`, DockerSettings{Image: "busybox", ContainerName: "box", Pull: "never", Env: []string{"A=1"}, Binds: []string{"/data:/data"},
			User: "1000", WorkingDir: "/w", Platform: "linux/amd64", NetworkMode: "none", AutoRemove: true}},
		{"kept, started by its command", `container:
  image: busybox
  keepContainer: true
  command: [sleep, "3600"]
steps:
  - echo hi
`, DockerSettings{Image: "busybox", StartCommand: []string{"sleep", "3600"}, Startup: "command"}},
		{"startup entrypoint", "container: {image: busybox, startup: Entrypoint}\nsteps:\n  - echo hi\n",
			DockerSettings{Image: "busybox", Startup: "entrypoint", AutoRemove: true}},
		{"a running container by name", "container: app\nsteps:\n  - echo hi\n", DockerSettings{ContainerName: "app"}},
		{"exec", "container: {exec: app, user: root, env: {X: 1}}\nsteps:\n  - echo hi\n",
			DockerSettings{ContainerName: "app", Exec: &DockerExec{User: "root", Env: []string{"X=1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerOf(t, tc.text); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Steps of the DAG stay command steps: the worker runs them in the
	// container; a step with an executor and a run/call step are its own.
	dag := mustParse(t, "x.yaml", "container: {image: busybox}\nsteps:\n  - echo hi\n  - {name: c, call: other}\n  - {name: d, type: docker, with: {image: alpine}, command: true}\n---\nname: other\nsteps:\n  - echo\n").Dags[0]
	if s := dag.GetSteps(); s[0].GetExecutor() != "" || s[1].GetChildDag() != "other" || s[2].GetExecutor() != "docker" {
		t.Errorf("steps %v", s)
	}
}

func TestBadDagContainers(t *testing.T) {
	const steps = "steps:\n  - echo hi\n"
	for _, tc := range []struct {
		name, text string
		line       int
		key, msg   string
	}{
		{"image and exec", "container: {image: a, exec: b}\n" + steps, 1, "container.exec", "cannot be used together"},
		{"neither", "container: {user: root}\n" + steps, 1, "container", "needs image"},
		{"a list", "container: [a]\n" + steps, 1, "container", "want the name of a running container"},
		{"exec with a name", "container:\n  exec: app\n  name: x\n" + steps, 3, "container.name", "cannot be used with exec"},
		{"bad startup", "container: {image: a, startup: forever}\n" + steps, 1, "container.startup", "want keepalive, entrypoint or command"},
		{"startup command without one", "container:\n  image: a\n  startup: command\n" + steps, 3, "container.startup", "needs the command"},
		{"a command with keepalive", "container:\n  image: a\n  startup: keepalive\n  command: [sleep, '9']\n" + steps, 4, "container.command", "not with startup: keepalive"},
		{"unknown key", "container:\n  image: a\n  healthcheck: {test: [NONE]}\n" + steps, 3, "container.healthcheck", `unknown key "healthcheck"`},
		{"the DAG's shell", "shell: bash\ncontainer: {image: a}\n" + steps, 2, "container", "the DAG's shell does not apply"},
		{"a script step", "container: {image: a}\nsteps:\n  - name: s\n    script: echo hi\n", 4, "steps[0].script", "script is not supported in it"},
		{"a step's shell", "container: {image: a}\nsteps:\n  - name: s\n    shell: bash\n    command: echo\n", 4, "steps[0].shell", "shell is not supported in it"},
		{"a handler's script", "container: {image: a}\nhandlerOn:\n  exit:\n    script: echo\n" + steps, 4, "handlerOn.exit.script", "script is not supported in it"},
		{"an open quote", "container: {image: a}\nsteps:\n  - name: s\n    command: [echo, \"echo 'a\"]\n", 4, "steps[0].command", "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.text, tc.line, tc.key, tc.msg) })
	}
}
