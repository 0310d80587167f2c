package main

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/dispatch/valid"
)

// configCommands are the commands that read config.yaml.
var configCommands = []string{"agent", "start-all", "coordinator", "worker"}

// probeContext is the context a command's action would get, built without
// running the app (app.Run costs milliseconds a call: too slow to fuzz).
// Environment variables are read here, as app.Run reads them.
func probeContext(t *testing.T, name string) (*cli.Context, error) {
	flags, err := commandFlags(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &cli.Command{Name: name, Flags: flags}
	annotateConfigKeys([]*cli.Command{cmd})
	set := flag.NewFlagSet(name, flag.ContinueOnError)
	for _, f := range flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
	}
	c := cli.NewContext(&cli.App{Name: "daguha"}, set, nil)
	c.Command = cmd
	return c, nil
}

// envVarsOf are the environment variables of the flags a config key sets.
func envVarsOf(t *testing.T, key string) []string {
	flagsOf := map[string]bool{}
	for _, k := range configKeys {
		if k.key == key {
			flagsOf[k.flag] = true
		}
	}
	seen := map[string]bool{}
	var vars []string
	for _, name := range configCommands {
		flags, _ := commandFlags(name)
		cmd := &cli.Command{Name: name, Flags: flags}
		annotateConfigKeys([]*cli.Command{cmd})
		for _, f := range flags {
			env, ok := f.(interface{ GetEnvVars() []string })
			if !ok || !flagsOf[f.Names()[0]] {
				continue
			}
			for _, v := range env.GetEnvVars() {
				if !seen[v] {
					seen[v] = true
					vars = append(vars, v)
				}
			}
		}
	}
	return vars
}

// FuzzConfigFile: config.yaml and the DAGU_* variables are outside input
// to every server and worker. Reading them must never panic; a bad file or
// value is refused with an error that names the key (or the variable) it
// is about; what is accepted reaches the flags as written.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("coordinator:\n  host: 0.0.0.0\n  port: 50055\n  signingKey: \"k\"\nworker:\n  id: w1\n  labels:\n    gpu: \"true\"\n    memory: 64G\n"), uint8(255), "")
	f.Add([]byte("worker:\n  coordinatorPort: abc\n"), uint8(255), "")
	f.Add([]byte("worker:\n  labels: a=b=c\nnonsense: 1\n"), uint8(12), "gpu=true,region=eu")
	f.Add([]byte("cluster:\n  join: [a:1, b:2]\n  leaseTTL: 30s\n  health: {warning: 10s, offline: 1m}\napi:\n  tokens: [t1, t2]\n"), uint8(3), "70000")
	f.Add([]byte("port: 8080\nhost: x\ndagsDir: /d\n"), uint8(1), "nope")
	f.Add([]byte("worker: &w\n  labels: {a: 1}\ncoordinator: *w\n"), uint8(255), "")
	f.Add([]byte("- 1\n- 2\n"), uint8(255), "")
	f.Add([]byte("worker:\n  labels:\n    gpu:\n    cuda: 11.80\n  id: 0123\n"), uint8(255), "")
	f.Fuzz(func(t *testing.T, data []byte, which uint8, envValue string) {
		const path = "/fuzz/config.yaml"
		if strings.ContainsRune(envValue, 0) {
			return // no environment can hold a NUL
		}
		var envVars []string
		if int(which) < len(configKeys) {
			envVars = envVarsOf(t, configKeys[which].key)
			for _, v := range envVars {
				t.Setenv(v, envValue)
			}
		}
		file, err := readConfig(path, data)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Fatalf("error %q does not name the file", msg)
			}
			if !strings.Contains(msg, "yaml: ") && !namesAKey(msg) {
				t.Fatalf("error %q names no config key", msg)
			}
			return
		}
		for key, text := range file.values {
			if !knownKey(key) {
				t.Fatalf("value for unknown key %q", key)
			}
			if strings.Contains(text, "<nil>") && !strings.Contains(string(data), "<nil>") {
				t.Fatalf("%s = %q: a Go rendering, not what the file says", key, text)
			}
		}
		for _, key := range file.unknown {
			if knownKey(key) {
				t.Fatalf("known key %q reported unknown", key)
			}
		}
		for _, name := range configCommands {
			c, err := probeContext(t, name)
			if err != nil {
				// As app.Run reports a bad variable.
				if !namesOneOf(err.Error(), envVars) {
					t.Fatalf("%s: error %q does not name the variable (%v)", name, err, envVars)
				}
				continue
			}
			from, err := file.apply(c)
			if err != nil {
				if !namesAKey(err.Error()) || !strings.Contains(err.Error(), path) {
					t.Fatalf("%s: error %q does not name the key and the file", name, err)
				}
				continue
			}
			for _, k := range configKeys {
				text, inFile := file.values[k.key]
				if !inFile || !hasFlag(c, k.flag) || from[k.flag] != k.key+" in "+path {
					continue
				}
				if _, isString := flagOf(c, k.flag).(*cli.StringFlag); isString && c.String(k.flag) != text {
					t.Fatalf("%s: %s = %q, the file says %q", name, k.flag, c.String(k.flag), text)
				}
			}
			if err := checkSettings(c, from); err != nil {
				var settings *settingsError
				if !errors.As(err, &settings) {
					t.Fatalf("%s: checkSettings returned %T, not its list of problems", name, err)
				}
				for _, problem := range settings.problems {
					flagName, _, _ := strings.Cut(problem, ":")
					if !hasFlag(c, flagName) {
						t.Fatalf("%s: problem %q does not start with the flag", name, problem)
					}
					if src := from.where(flagName); !strings.Contains(problem, "(from "+src+")") {
						t.Fatalf("%s: problem %q does not say the value came from %s", name, problem, src)
					}
				}
				continue
			}
			for _, labelsFlag := range []string{"labels", "worker.labels"} {
				if hasFlag(c, labelsFlag) {
					if _, err := valid.ParseLabels(c.String(labelsFlag)); err != nil {
						t.Fatalf("%s: accepted labels %q that do not parse: %v", name, c.String(labelsFlag), err)
					}
				}
			}
		}
	})
}

func knownKey(key string) bool {
	for _, k := range configKeys {
		if k.key == key {
			return true
		}
	}
	return false
}

func namesAKey(msg string) bool {
	for _, k := range configKeys {
		if strings.Contains(msg, k.key) {
			return true
		}
	}
	return false
}

func namesOneOf(msg string, names []string) bool {
	for _, n := range names {
		if strings.Contains(msg, n) {
			return true
		}
	}
	return false
}

func flagOf(c *cli.Context, name string) cli.Flag {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
