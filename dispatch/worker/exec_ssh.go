package worker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindSSH is Dagu's ssh executor: the step runs on another host over SSH.
const kindSSH = "ssh"

// Dagu's defaults: port 22, 30 s to connect, /bin/sh on the host.
const (
	defaultSSHPort    = "22"
	defaultSSHTimeout = 30 * time.Second
	defaultSSHShell   = "/bin/sh"
)

// sshSettings are the ssh executor's settings (dagfile/executors_ssh.go).
type sshSettings struct {
	User     string `json:"user"`
	Host     string `json:"host"`
	Port     string `json:"port"`
	Key      string `json:"key"`
	Password string `json:"password"`
	// StrictHostKey is true unless the DAG says false: the host's key
	// must be in KnownHostFile (default ~/.ssh/known_hosts of the
	// worker's user), as current Dagu does.
	StrictHostKey *bool    `json:"strictHostKey"`
	KnownHostFile string   `json:"knownHostFile"`
	Timeout       string   `json:"timeout"`
	Shell         string   `json:"shell"`
	ShellArgs     []string `json:"shellArgs"`
}

// sshExecutor runs the step on the host, as current Dagu does: it logs in
// (the key file, else the password, else the worker user's default keys),
// checks the host's key against known_hosts unless strictHostKey is
// false, starts the shell (the setting shell, else the step's, else
// /bin/sh) and writes it the step: cd to the step's dir when it has one,
// set -e, then its script or its commands, in a function, so the shell
// reads it all before it runs any. The variables of the step's scope that
// the text names are exported to it first (references with a path as
// DAGUHA_REF_n, as for a command), but for those that describe a host
// (PATH, HOME, ...: the remote host's own stay), and the run's positional
// params are its "$@". Its stdout is the step's output, its stderr goes
// to the log beside it, and its exit status is the step's: non-zero fails
// it. A cancel or a timeout sends SIGTERM to the remote command (OpenSSH
// signals its process group), SIGKILL after the grace, then closes the
// connection. The password never goes into a log line, an error or the
// output.
type sshExecutor struct{}

func init() { registerExecutor(kindSSH, sshExecutor{}) }

func (sshExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, spec := t.x, t.spec()
	var s sshSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return executorResult(t, nil, fmt.Sprintf("ssh settings: %v", err))
		}
	}
	// The settings are the worker's to read: their references come from
	// the step's variables, then the worker's environment.
	values := t.scope()
	for _, v := range []*string{&s.User, &s.Host, &s.Port, &s.Key, &s.Password, &s.KnownHostFile, &s.Shell} {
		*v = expandVars(*v, values)
	}
	for i := range s.ShellArgs {
		s.ShellArgs[i] = expandVars(s.ShellArgs[i], values)
	}
	fail := func(format string, args ...any) *daguhav1.StepState {
		return executorResult(t, nil, hidePassword(fmt.Sprintf(format, args...), s.Password))
	}
	s.Host, s.Port = strings.TrimSpace(s.Host), strings.TrimSpace(s.Port)
	if s.Port == "" || s.Port == "0" {
		s.Port = defaultSSHPort
	}
	if s.Host == "" || s.User == "" {
		return fail("ssh step needs a host and a user (after expanding variables): host %q, user %q", s.Host, s.User)
	}
	addr := net.JoinHostPort(s.Host, s.Port)
	config, err := s.clientConfig(addr)
	if err != nil {
		return fail("ssh %s@%s: %v", s.User, addr, err)
	}

	grace := x.e.KillGrace
	if sec := x.run.GetDag().GetMaxCleanUpTimeSec(); sec > 0 {
		grace = time.Duration(sec) * time.Second
	}
	if grace <= 0 {
		grace = defaultKillGrace
	}
	client, err := dialSSH(ctx, addr, config)
	if err != nil {
		if ctx.Err() != nil {
			return stoppedState(ctx)
		}
		return fail("ssh %s@%s: %v", s.User, addr, err)
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return fail("ssh %s@%s: opening a session: %v", s.User, addr, err)
	}
	defer session.Close()

	// The streams: both to the log and the tail, each kept apart for the
	// outputs and ${id.stdout} / ${id.stderr}.
	keep := x.outputLimit()
	stdout, stderr := &capBuffer{max: keep}, &capBuffer{max: keep}
	tail := &tailBuffer{max: outputTailBytes}
	var combined io.Writer = tail
	if logFile, err := x.openLog(spec.GetName(), t.retry); err != nil {
		x.logger.Warn("step log not kept", "step", spec.GetName(), "error", err)
	} else if logFile != nil {
		defer logFile.Close()
		combined = io.MultiWriter(&lenientWriter{w: logFile}, tail)
	}
	combined = &lockedWriter{w: combined}
	outTo, errTo := []io.Writer{combined, stdout}, []io.Writer{combined, stderr}
	if idOut, idErr, err := x.openStreams(t.i); err != nil {
		x.logger.Warn("step streams not kept", "step", spec.GetName(), "error", err)
	} else if idOut != nil {
		defer idOut.Close()
		defer idErr.Close()
		outTo, errTo = append(outTo, &lenientWriter{w: idOut}), append(errTo, &lenientWriter{w: idErr})
	}
	// The script first says its process group on stderr, for stopRemote;
	// the line never reaches the log.
	group := &groupLine{marker: "daguha-group-" + randomID(), next: io.MultiWriter(errTo...)}
	session.Stdout, session.Stderr = io.MultiWriter(outTo...), group
	session.Stdin = strings.NewReader(x.remoteScript(spec, t.vars, group.marker))

	program := remoteProgram(s, spec)
	if err := session.Start(program); err != nil {
		return fail("ssh %s@%s: starting %s: %v", s.User, addr, program, err)
	}
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		stopRemote(client, session, group.id(), ssh.SIGTERM, grace)
		graceOver := time.NewTimer(grace)
		select {
		case <-done:
		case <-graceOver.C:
			stopRemote(client, session, group.id(), ssh.SIGKILL, grace)
			client.Close()
			<-done
		}
		graceOver.Stop()
		st := stoppedState(ctx)
		st.OutputTail = tail.String()
		return st
	}

	st := &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, OutputTail: tail.String()}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case runErr == nil:
	case errors.As(runErr, &exit) && exit.Signal() != "":
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, int32(exit.ExitStatus())
		st.Error = hidePassword(fmt.Sprintf("the command on %s was killed by signal %s", addr, exit.Signal()), s.Password)
	case errors.As(runErr, &exit):
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, int32(exit.ExitStatus())
		st.Error = fmt.Sprintf("the command on %s exited with status %d", addr, exit.ExitStatus())
	case errors.As(runErr, &missing):
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, -1
		st.Error = fmt.Sprintf("the command on %s ended without an exit status (the connection was lost, or the host ended the session)", addr)
	default:
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, -1
		st.Error = hidePassword(fmt.Sprintf("ssh %s@%s: %v", s.User, addr, runErr), s.Password)
	}
	return publishExecutorOutput(t, st, stdout, stderr)
}

// clientConfig is how the worker logs in to addr and checks its key.
func (s sshSettings) clientConfig(addr string) (*ssh.ClientConfig, error) {
	timeout := defaultSSHTimeout
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout %q: want a duration such as 30s", s.Timeout)
		}
		timeout = d
	}
	config := &ssh.ClientConfig{User: s.User, Timeout: timeout}
	switch {
	case s.Key != "":
		signer, err := readSigner(resolvePath(s.Key, ""))
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	case s.Password == "":
		// Dagu's default keys, the ssh client's.
		home, _ := os.UserHomeDir()
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			path := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(path); err != nil {
				continue
			}
			signer, err := readSigner(path)
			if err != nil {
				return nil, err
			}
			config.Auth = append(config.Auth, ssh.PublicKeys(signer))
			break
		}
		if len(config.Auth) == 0 {
			return nil, fmt.Errorf("no key nor password: set key (a private key file on the worker) or password, or give the worker's user a key in ~/.ssh (id_ed25519, id_ecdsa or id_rsa)")
		}
	}
	if s.Password != "" {
		password := s.Password
		config.Auth = append(config.Auth, ssh.Password(password),
			// Servers that ask through PAM: the password answers every
			// question that is not echoed.
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = password
					}
				}
				return answers, nil
			}))
	}
	if s.StrictHostKey != nil && !*s.StrictHostKey {
		config.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // the DAG asked for it (strictHostKey: false)
		return config, nil
	}
	file := s.KnownHostFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("strict host key checking needs a known_hosts file, and the worker's user has no home: set knownHostFile: %v", err)
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	file = resolvePath(file, "")
	check, err := knownhosts.New(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("strict host key checking (the default) needs %s, which does not exist on this worker: add the host's key to it (ssh-keyscan -p PORT HOST >> FILE), set knownHostFile, or set strictHostKey: false", file)
	}
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %v", file, err)
	}
	config.HostKeyAlgorithms = knownAlgorithms(check, addr)
	config.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return fmt.Errorf("the host's %s key is not in %s: add it (ssh-keyscan -p PORT HOST >> %s) or set strictHostKey: false", key.Type(), file, file)
		case errors.As(err, &keyErr):
			return fmt.Errorf("the host's %s key is not the one %s holds for it (%s): the host's key changed, or someone is in between; refused", key.Type(), file, keyErr.Want[0].String())
		case errors.As(err, &revoked):
			return fmt.Errorf("the host's key is revoked in %s", file)
		}
		return err
	}
	return config, nil
}

// knownAlgorithms are the host key algorithms of the keys that check
// holds for addr, so the host is asked for one of those (else it may
// offer another kind it also has, which would not match); nil when it
// holds none (any kind, then refused as unknown).
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	_, probe, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	signer, err := ssh.NewSignerFromKey(probe)
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(check(addr, &net.TCPAddr{IP: net.IPv4zero}, signer.PublicKey()), &keyErr) {
		return nil
	}
	var algorithms []string
	seen := map[string]bool{}
	for _, known := range keyErr.Want {
		kinds := []string{known.Key.Type()}
		if kinds[0] == ssh.KeyAlgoRSA {
			kinds = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, kind := range kinds {
			if !seen[kind] {
				seen[kind] = true
				algorithms = append(algorithms, kind)
			}
		}
	}
	return algorithms
}

// readSigner reads an unencrypted private key file (as Dagu reads one).
func readSigner(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var encrypted *ssh.PassphraseMissingError
	if errors.As(err, &encrypted) {
		return nil, fmt.Errorf("key %s is protected by a passphrase, which daguha cannot give (as Dagu): use a key without one", path)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %v", path, err)
	}
	return signer, nil
}

// dialSSH connects and logs in within config.Timeout (the TCP connect and
// the handshake both), or until ctx ends.
func dialSSH(ctx context.Context, addr string, config *ssh.ClientConfig) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, config.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no connection within the timeout of %s", config.Timeout)
		}
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, channels, requests, err := ssh.NewClientConn(conn, addr, config)
	if !stop() || (err != nil && ctx.Err() != nil) {
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no login within the timeout of %s", config.Timeout)
		}
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, channels, requests), nil
}

// stopRemote sends sig to the step's processes on the host: with a
// signal request, which OpenSSH sends to the command's process group (but
// refuses for a session of root), and with kill in a session of its own
// to the process group the script said it leads (group), waiting for
// that kill at most wait.
func stopRemote(client *ssh.Client, session *ssh.Session, group string, sig ssh.Signal, wait time.Duration) {
	_ = session.Signal(sig)
	if group == "" {
		return
	}
	killer, err := client.NewSession()
	if err != nil {
		return
	}
	defer killer.Close()
	kill := fmt.Sprintf("kill -%s -%s 2>/dev/null || kill -%s %s", sig, group, sig, group)
	done := make(chan struct{})
	go func() {
		_ = killer.Run(defaultSSHShell + " -c " + shellQuote(kill))
		close(done)
	}()
	timer := time.NewTimer(min(wait, 5*time.Second))
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// groupLine passes a remote stderr on, but for the line that starts with
// marker, which says the process group of the step's shell on the host.
// Lines before it (a login shell's) go on as they are; everything after
// it goes on at once.
type groupLine struct {
	marker string
	next   io.Writer

	mu    sync.Mutex
	found bool
	group string
	line  []byte
}

// maxGroupLine bounds the line groupLine holds while it looks.
const maxGroupLine = 4096

func (g *groupLine) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(p)
	for !g.found && len(p) > 0 {
		end := bytes.IndexByte(p, '\n')
		if end < 0 {
			g.line = append(g.line, p...)
			if len(g.line) > maxGroupLine {
				_, _ = g.next.Write(g.line)
				g.line = g.line[:0]
			}
			return n, nil
		}
		line := append(g.line, p[:end+1]...)
		g.line, p = nil, p[end+1:]
		if rest, ok := bytes.CutPrefix(line, []byte(g.marker+" ")); ok {
			g.found, g.group = true, strings.TrimSpace(string(rest))
			continue
		}
		_, _ = g.next.Write(line)
	}
	if len(p) > 0 {
		_, _ = g.next.Write(p)
	}
	return n, nil
}

// id is the process group the script said, or "" before it did (or when
// it is not a number).
func (g *groupLine) id() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := strconv.Atoi(g.group); err != nil {
		return ""
	}
	return g.group
}

// remoteProgram is the command line the host runs: the shell that reads
// the step on its stdin, in place of the user's login shell (exec), so
// that it leads the session's process group.
func remoteProgram(s sshSettings, spec *daguhav1.StepSpec) string {
	argv := strings.Fields(s.Shell)
	argv = append(argv, s.ShellArgs...)
	if s.Shell == "" {
		argv = append([]string(nil), spec.GetShell()...)
	}
	if len(argv) == 0 {
		argv = []string{defaultSSHShell}
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return "exec " + strings.Join(quoted, " ")
}

// hostVariables describe the host a shell runs on: the remote one keeps
// its own, whatever the step's scope holds.
var hostVariables = map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"PWD": true, "OLDPWD": true, "IFS": true, "CDPATH": true, "ENV": true, "PS1": true, "PS2": true, "PS4": true,
	"PPID": true, "LINENO": true, "OPTIND": true, "OPTARG": true, "TERM": true, "MAIL": true, "TMPDIR": true,
	"HOSTNAME": true, "LANG": true, "UID": true, "EUID": true}

// remoteScript is what the host's shell reads (see sshExecutor); its
// first line prints marker and the shell's process id (its process group)
// on stderr.
func (x *execution) remoteScript(spec *daguhav1.StepSpec, vars []envVar, marker string) string {
	scope := resolver{x: x, vars: vars, positional: true}
	var body strings.Builder
	var refs []envVar
	text := func(s string) string {
		out, more := shellText(s, resolver{x: x, vars: append(append([]envVar(nil), vars...), refs...), positional: true})
		refs = append(refs, more...)
		return out
	}
	if dir := spec.GetDir(); dir != "" {
		fmt.Fprintf(&body, "cd -- %s || exit 1\n", shellQuote(expandVars(dir, scope)))
	}
	body.WriteString("set -e\n")
	named := spec.GetScript()
	switch {
	case spec.GetScript() != "":
		body.WriteString(text(spec.GetScript()))
	case len(spec.GetCommands()) > 0:
		for _, c := range spec.GetCommands() {
			body.WriteString(text(c) + "\n")
			named += "\n" + c
		}
	default:
		body.WriteString(text(spec.GetCommand()))
		named = spec.GetCommand()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "printf '%%s %%s\\n' %s \"$$\" >&2\n", shellQuote(marker))
	b.WriteString("__daguha_step() {\n")
	b.WriteString(strings.TrimRight(body.String(), "\n") + "\n}\n")
	for _, name := range namedVariables(named) {
		if hostVariables[name] || strings.HasPrefix(name, "LC_") || strings.HasPrefix(name, "SSH_") {
			continue
		}
		if value, ok := scope.variable(name); ok {
			fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(value))
		}
	}
	for _, v := range refs {
		fmt.Fprintf(&b, "export %s=%s\n", v.name, shellQuote(v.value))
	}
	b.WriteString("set --")
	for _, p := range x.positional {
		b.WriteString(" " + shellQuote(p))
	}
	b.WriteString("\n__daguha_step \"$@\"\n")
	return b.String()
}

// namedVariables are the names text refers to as $NAME or ${NAME...},
// each once, in order.
func namedVariables(text string) []string {
	var names []string
	seen := map[string]bool{}
	for i := 0; i < len(text); i++ {
		if text[i] != '$' {
			continue
		}
		j := i + 1
		if j < len(text) && text[j] == '{' {
			j++
		}
		start := j
		for j < len(text) && (isNameStart(text[j]) || j > start && text[j] >= '0' && text[j] <= '9') {
			j++
		}
		if name := text[start:j]; name != "" && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// shellQuote is s as one word of sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// hidePassword takes a password out of a message, should a server or a
// library have put it there.
func hidePassword(message, password string) string {
	if password == "" {
		return message
	}
	return strings.ReplaceAll(message, password, secretShown)
}
