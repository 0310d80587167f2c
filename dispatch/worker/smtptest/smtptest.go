// Package smtptest starts an SMTP server on 127.0.0.1 for the tests of
// the mail the worker sends: EHLO, STARTTLS or TLS from the first byte
// (when given a certificate), AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP
// and QUIT. It keeps every mail it takes.
//
// Test-only: no production package imports it.
package smtptest

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options say what a server asks of its clients.
type Options struct {
	// Username and Password, when Username is set, must be given with
	// AUTH PLAIN before MAIL.
	Username, Password string
	// TLS, when set, is offered with STARTTLS, or spoken from the first
	// byte when Implicit.
	TLS      *tls.Config
	Implicit bool
	// OnData, when set, is called as a mail is taken, before it is kept.
	OnData func()
}

// Mail is a mail the server took.
type Mail struct {
	// From and To are the envelope's addresses.
	From string
	To   []string
	// Data is the message as sent after DATA, lines ending in \n.
	Data []byte
	// AuthUser is who the client authenticated as ("" for no one); TLS
	// whether the mail came over TLS.
	AuthUser string
	TLS      bool
}

// Server is an SMTP server a test started.
type Server struct {
	t        testing.TB
	listener net.Listener
	options  Options

	mu           sync.Mutex
	mails        []Mail
	authFailures int
	arrived      chan struct{}
}

// Start starts a server on a free loopback port. It stops with the test.
func Start(t testing.TB, options Options) *Server {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if options.Implicit {
		listener = tls.NewListener(listener, options.TLS)
	}
	s := &Server{t: t, listener: listener, options: options, arrived: make(chan struct{}, 100)}
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

// Addr is host:port.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Port is the port it listens on.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return port
}

// Received is every mail taken so far, in order.
func (s *Server) Received() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// AuthFailures is how many AUTH tries failed.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
}

// Wait waits for n mails in all and returns them, failing the test
// after 10 seconds.
func (s *Server) Wait(n int) []Mail {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for len(s.Received()) < n {
		select {
		case <-s.arrived:
		case <-deadline:
			s.t.Fatalf("%d mails arrived, want %d", len(s.Received()), n)
		}
	}
	return s.Received()
}

func (s *Server) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	text := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = text.PrintfLine(format, args...) }
	_, isTLS := conn.(*tls.Conn)
	var current Mail
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
			if s.options.Username != "" {
				lines = append(lines, "AUTH PLAIN")
			}
			if s.options.TLS != nil && !isTLS {
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
			if s.options.TLS == nil || isTLS {
				reply("502 no")
				continue
			}
			reply("220 go ahead")
			tlsConn := tls.Server(conn, s.options.TLS)
			if err := tlsConn.Handshake(); err != nil {
				return
			}
			conn, isTLS = tlsConn, true
			text = textproto.NewConn(tlsConn)
			current, authUser = Mail{}, ""
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
			if len(parts) == 3 && parts[1] == s.options.Username && parts[2] == s.options.Password {
				authUser = parts[1]
				reply("235 2.7.0 authenticated")
			} else {
				s.mu.Lock()
				s.authFailures++
				s.mu.Unlock()
				reply("535 5.7.8 authentication failed")
			}
		case "MAIL":
			if s.options.Username != "" && authUser == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			current = Mail{From: angle(arg), AuthUser: authUser, TLS: isTLS}
			reply("250 ok")
		case "RCPT":
			current.To = append(current.To, angle(arg))
			reply("250 ok")
		case "DATA":
			reply("354 end with .")
			data, err := text.ReadDotBytes()
			if err != nil {
				return
			}
			current.Data = data
			if s.options.OnData != nil {
				s.options.OnData()
			}
			s.mu.Lock()
			s.mails = append(s.mails, current)
			s.mu.Unlock()
			s.arrived <- struct{}{}
			reply("250 queued")
		case "RSET":
			current = Mail{}
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
