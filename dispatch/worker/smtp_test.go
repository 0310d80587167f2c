package worker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSMTP is a small SMTP server on 127.0.0.1 for the tests: EHLO,
// STARTTLS (when it has a certificate), AUTH PLAIN, MAIL, RCPT, DATA,
// RSET, NOOP and QUIT. It records each mail it takes.
type testSMTP struct {
	t        *testing.T
	listener net.Listener
	// username and password, when set, must be given with AUTH PLAIN
	// before MAIL.
	username, password string
	// tlsConfig, when set, is offered with STARTTLS, or spoken from the
	// first byte when implicit.
	tlsConfig *tls.Config
	implicit  bool
	// onData, when set, is called as a mail is taken.
	onData func()

	mu       sync.Mutex
	mails    []receivedMail
	authFail int
	arrived  chan struct{}
}

type receivedMail struct {
	from     string
	to       []string
	data     []byte
	authUser string
	tls      bool
}

func startSMTP(t *testing.T, configure func(*testSMTP)) *testSMTP {
	t.Helper()
	s := &testSMTP{t: t, arrived: make(chan struct{}, 100)}
	if configure != nil {
		configure(s)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.implicit {
		listener = tls.NewListener(listener, s.tlsConfig)
	}
	s.listener = listener
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *testSMTP) port() string {
	_, port, _ := net.SplitHostPort(s.listener.Addr().String())
	return port
}

func (s *testSMTP) received() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.mails...)
}

// wait waits for n mails in all.
func (s *testSMTP) wait(n int) []receivedMail {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for len(s.received()) < n {
		select {
		case <-s.arrived:
		case <-deadline:
			s.t.Fatalf("%d mails arrived, want %d", len(s.received()), n)
		}
	}
	return s.received()
}

func (s *testSMTP) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	text := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = text.PrintfLine(format, args...) }
	_, isTLS := conn.(*tls.Conn)
	var current receivedMail
	authUser := ""
	reply("220 test.local ESMTP ready")
	for {
		line, err := text.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			lines := []string{"test.local greets " + arg, "8BITMIME"}
			if s.username != "" {
				lines = append(lines, "AUTH PLAIN")
			}
			if s.tlsConfig != nil && !isTLS {
				lines = append(lines, "STARTTLS")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				reply("250%s%s", sep, l)
			}
		case "STARTTLS":
			if s.tlsConfig == nil || isTLS {
				reply("502 no")
				continue
			}
			reply("220 go ahead")
			tlsConn := tls.Server(conn, s.tlsConfig)
			if err := tlsConn.Handshake(); err != nil {
				return
			}
			conn, isTLS = tlsConn, true
			text = textproto.NewConn(tlsConn)
			current, authUser = receivedMail{}, ""
		case "AUTH":
			mechanism, initial, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mechanism, "PLAIN") {
				reply("504 only PLAIN")
				continue
			}
			if initial == "" {
				reply("334 ")
				if initial, err = text.ReadLine(); err != nil {
					return
				}
			}
			decoded, _ := base64.StdEncoding.DecodeString(initial)
			parts := strings.Split(string(decoded), "\x00")
			if len(parts) == 3 && parts[1] == s.username && parts[2] == s.password {
				authUser = parts[1]
				reply("235 2.7.0 authenticated")
			} else {
				s.mu.Lock()
				s.authFail++
				s.mu.Unlock()
				reply("535 5.7.8 authentication failed")
			}
		case "MAIL":
			if s.username != "" && authUser == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			current = receivedMail{from: angle(arg), authUser: authUser, tls: isTLS}
			reply("250 ok")
		case "RCPT":
			current.to = append(current.to, angle(arg))
			reply("250 ok")
		case "DATA":
			reply("354 end with .")
			data, err := text.ReadDotBytes()
			if err != nil {
				return
			}
			current.data = data
			if s.onData != nil {
				s.onData()
			}
			s.mu.Lock()
			s.mails = append(s.mails, current)
			s.mu.Unlock()
			s.arrived <- struct{}{}
			reply("250 queued")
		case "RSET":
			current = receivedMail{}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown command")
		}
	}
}

// angle is the address in FROM:<a@b> or TO:<a@b>.
func angle(arg string) string {
	if i, j := strings.IndexByte(arg, '<'), strings.IndexByte(arg, '>'); i >= 0 && j > i {
		return arg[i+1 : j]
	}
	return arg
}

// parsedMail is a received mail read back: its headers, its HTML and its
// attachments by file name.
type parsedMail struct {
	header      mail.Header
	subject     string
	html        string
	attachments map[string]string
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading the mail: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	out := parsedMail{header: msg.Header, subject: subject, attachments: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("content type %q (%v), want multipart/mixed", msg.Header.Get("Content-Type"), err)
	}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := parts.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(part)
		if part.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("part %v is not base64", part.Header)
		}
		// ReadDotBytes gave the lines ending in \n.
		for _, line := range strings.Split(string(raw), "\n") {
			if len(strings.TrimSuffix(line, "\r")) > 76 {
				t.Fatalf("a base64 line of %d characters", len(line))
			}
		}
		decoded, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if name := part.FileName(); name != "" {
			out.attachments[name] = string(decoded)
		} else {
			out.html = string(decoded)
		}
	}
	return out
}

// testCertificate is a certificate for 127.0.0.1, and a pool that trusts
// it.
func testCertificate(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// logText is what was logged to b.
func logText(b *syncBuffer) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort is a port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strconv.Itoa(port)
}
