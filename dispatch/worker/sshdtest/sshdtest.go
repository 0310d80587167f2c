// Package sshdtest starts SSH servers on 127.0.0.1 for the tests of the
// ssh executor: OpenSSH's sshd (Debian's openssh-server), run as the
// current user with a host key and a client key the test makes, and a
// small server of golang.org/x/crypto/ssh that takes a password, which a
// test cannot try against sshd without the password of a system account.
// Both run what they are asked with /bin/sh on this machine.
//
// Test-only: no production package imports it.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is OpenSSH's server binary, as Debian installs it.
const SSHD = "/usr/sbin/sshd"

// Server is an SSH server a test started.
type Server struct {
	// Host and Port are where it listens; User is who may log in.
	Host, Port, User string
	// HostKey is the key it proves itself with.
	HostKey ssh.PublicKey
	// ClientKey is a private key file it takes (sshd only), and
	// KnownHosts a known_hosts file that holds its host key.
	ClientKey, KnownHosts string

	log *lockedBuffer
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, s.Port) }

// Log is what the server logged (sshd's stderr).
func (s *Server) Log() string { return s.log.String() }

// Start starts sshd on a free loopback port, or skips the test when it
// is not installed. It stops with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		t.Skipf("%s is not installed (apt-get install openssh-server): %v", SSHD, err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		// sshd running as root separates privileges into this directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	hostKey := writeKey(t, filepath.Join(dir, "host_ed25519"))
	clientKey := writeKey(t, filepath.Join(dir, "client_ed25519"))
	writeFile(t, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientKey))
	s := &Server{Host: "127.0.0.1", User: me.Username, HostKey: hostKey, ClientKey: filepath.Join(dir, "client_ed25519"),
		log: &lockedBuffer{}}
	// A port taken between the probe and sshd's bind is tried again.
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = freePort(t)
		config := sshdConfig(t, dir, s.Port, me.Username)
		s.log = &lockedBuffer{}
		cmd := exec.Command(SSHD, "-D", "-e", "-f", config)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		if waitForBanner(s.Addr(), exited) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			s.KnownHosts = WriteKnownHosts(t, s.Addr(), hostKey)
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		if !strings.Contains(s.Log(), "Address already in use") {
			t.Fatalf("sshd did not start:\n%s", s.Log())
		}
	}
	t.Fatalf("sshd found no free port:\n%s", s.Log())
	return nil
}

// sshdConfig writes the configuration of an sshd on port that lets user
// in with the keys in dir, and returns its path.
func sshdConfig(t testing.TB, dir, port, username string) string {
	t.Helper()
	lines := []string{
		"ListenAddress 127.0.0.1",
		"Port " + port,
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"AllowUsers " + username,
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"LogLevel VERBOSE",
	}
	path := filepath.Join(dir, "sshd_config")
	// OpenSSH 9.8 and later hold back an address whose logins fail; a
	// test refuses logins on purpose. Older ones do not know the option.
	penalties := append(append([]string(nil), lines...), "PerSourcePenalties no")
	writeFile(t, path, []byte(strings.Join(penalties, "\n")+"\n"))
	if out, err := exec.Command(SSHD, "-t", "-f", path).CombinedOutput(); err != nil {
		if !strings.Contains(string(out), "PerSourcePenalties") {
			t.Fatalf("sshd refuses its configuration: %v\n%s", err, out)
		}
		writeFile(t, path, []byte(strings.Join(lines, "\n")+"\n"))
	}
	return path
}

// waitForBanner waits until addr answers with an SSH banner, or the
// server exited, or 10 seconds passed.
func waitForBanner(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			banner := make([]byte, 8)
			_, err = io.ReadFull(conn, banner)
			conn.Close()
			if err == nil && string(banner) == "SSH-2.0-" {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// StartPassword starts a server of x/crypto/ssh on a free loopback port
// that lets username in with password (nothing else) and runs each exec
// request with /bin/sh -c, its stdin, stdout, stderr, exit status and
// signals (to the process group) those of the session. It stops with the
// test.
func StartPassword(t testing.TB, username, password string) *Server {
	t.Helper()
	_, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(private)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1", User: username, HostKey: signer.PublicKey(), log: &lockedBuffer{}}
	config := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, given []byte) (*ssh.Permissions, error) {
		if c.User() == username && subtle.ConstantTimeCompare(given, []byte(password)) == 1 {
			return nil, nil
		}
		fmt.Fprintf(s.log, "password refused for %s\n", c.User())
		return nil, errors.New("password refused")
	}}
	config.AddHostKey(signer)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, s.Port, _ = net.SplitHostPort(listener.Addr().String())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		listener.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveConn(conn, config, s.log)
			}()
		}
	}()
	s.KnownHosts = WriteKnownHosts(t, s.Addr(), s.HostKey)
	return s
}

func serveConn(conn net.Conn, config *ssh.ServerConfig, log io.Writer) {
	defer conn.Close()
	server, channels, requests, err := ssh.NewServerConn(conn, config)
	if err != nil {
		fmt.Fprintf(log, "handshake: %v\n", err)
		return
	}
	defer server.Close()
	go ssh.DiscardRequests(requests)
	for incoming := range channels {
		if incoming.ChannelType() != "session" {
			_ = incoming.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		channel, channelRequests, err := incoming.Accept()
		if err != nil {
			return
		}
		go serveSession(channel, channelRequests)
	}
}

// serveSession runs the session's one exec request.
func serveSession(channel ssh.Channel, requests <-chan *ssh.Request) {
	defer channel.Close()
	var cmd *exec.Cmd
	done := make(chan struct{})
	for {
		select {
		case <-done:
			status := uint32(255)
			if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() >= 0 {
				status = uint32(cmd.ProcessState.ExitCode())
			}
			_, _ = channel.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
			return
		case req, ok := <-requests:
			if !ok {
				if cmd != nil && cmd.Process != nil {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
				return
			}
			switch {
			case req.Type == "exec" && cmd == nil:
				var payload struct{ Command string }
				if ssh.Unmarshal(req.Payload, &payload) != nil {
					_ = req.Reply(false, nil)
					continue
				}
				cmd = exec.Command("/bin/sh", "-c", payload.Command)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = channel, channel, channel.Stderr()
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if err := cmd.Start(); err != nil {
					_ = req.Reply(false, nil)
					return
				}
				_ = req.Reply(true, nil)
				go func() {
					_ = cmd.Wait()
					close(done)
				}()
			case req.Type == "signal" && cmd != nil:
				var payload struct{ Name string }
				if ssh.Unmarshal(req.Payload, &payload) == nil && cmd.Process != nil {
					sig := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT}[payload.Name]
					if sig != 0 {
						_ = syscall.Kill(-cmd.Process.Pid, sig)
					}
				}
			default:
				if req.WantReply {
					_ = req.Reply(req.Type == "env", nil)
				}
			}
		}
	}
}

// WriteKnownHosts writes a known_hosts file that holds key for addr and
// returns its path.
func WriteKnownHosts(t testing.TB, addr string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, path, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n"))
	return path
}

// NewKey is a fresh public key: one no server has.
func NewKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	public, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeKey makes an ed25519 key, writes its private half to path in
// OpenSSH's form, and returns its public half.
func writeKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(private, "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, pem.EncodeToMemory(block))
	key, err := ssh.NewPublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort is a loopback port nothing listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
