package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The SMTP side of the mails (net/smtp): one connection per mail, TLS
// when the server offers STARTTLS and from the start on port 465, the
// password sent only over TLS or to this host itself (net/smtp's
// PlainAuth refuses otherwise), everything within one timeout.

// SMTPServer is where mails go and who sends them. Its String and
// LogValue never show the password.
type SMTPServer struct {
	Host     string
	Port     string
	Username string
	Password string
}

func (s SMTPServer) String() string {
	password := ""
	if s.Password != "" {
		password = " password=" + secretShown
	}
	return fmt.Sprintf("%s username=%q%s", net.JoinHostPort(s.Host, s.Port), s.Username, password)
}

// GoString is String, so %#v does not show the password either.
func (s SMTPServer) GoString() string { return s.String() }

// LogValue is what a log line shows of the server.
func (s SMTPServer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes the server without its password, so a settings
// dump (or a JSON log line holding them) does not show it.
func (s SMTPServer) MarshalJSON() ([]byte, error) {
	shown := map[string]string{"host": s.Host, "port": s.Port, "username": s.Username}
	if s.Password != "" {
		shown["password"] = secretShown
	}
	return json.Marshal(shown)
}

// secretShown stands for a password wherever one would be written.
const secretShown = "(hidden)"

// implicitTLSPort is SMTP over TLS from the first byte (SMTPS): the
// port where the connection is TLS before the server says a word.
var implicitTLSPort = "465"

// DefaultSMTPPort is the port of a server given without one.
const DefaultSMTPPort = "25"

// DefaultMailTimeout bounds the delivery of one mail, as in Dagu.
const DefaultMailTimeout = 30 * time.Second

// Bounds on what a mail attaches: the end of each log, and so many
// bytes of logs in all; the logs past it are named in the mail instead.
const (
	maxAttachmentBytes = 4 << 20
	maxAttachedBytes   = 16 << 20
)

// mailMessage is one mail, ready to send.
type mailMessage struct {
	from        *mail.Address
	to          []*mail.Address
	subject     string
	html        string
	attachments []attachment
}

type attachment struct {
	name string // the file name the mail gives it
	path string
	// contentType is its MIME type; empty: a log's, UTF-8 text.
	contentType string
}

// deliver sends m through server within timeout. roots, when set, are the
// CAs the server's certificate must come from (else the system's). The
// error never holds the password.
func deliver(ctx context.Context, server SMTPServer, m *mailMessage, timeout time.Duration, roots *x509.CertPool) error {
	err := deliverOnce(ctx, server, m, timeout, roots)
	return scrub(err, server)
}

func deliverOnce(ctx context.Context, server SMTPServer, m *mailMessage, timeout time.Duration, roots *x509.CertPool) error {
	if timeout <= 0 {
		timeout = DefaultMailTimeout
	}
	port := server.Port
	if port == "" {
		port = DefaultSMTPPort
	}
	addr := net.JoinHostPort(server.Host, port)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body := compose(m)
	dialer := &net.Dialer{}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	// Everything after the dial within the same time, whatever the
	// server does.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	tlsConfig := &tls.Config{ServerName: server.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}
	if port == implicitTLSPort {
		tlsConn := tls.Client(conn, tlsConfig)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("TLS with %s: %w", addr, err)
		}
		conn = tlsConn
	}
	client, err := smtp.NewClient(conn, server.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%s: %w", addr, err)
	}
	defer client.Close()
	if err := client.Hello(helloName()); err != nil {
		return fmt.Errorf("%s: EHLO: %w", addr, err)
	}
	if _, tlsAlready := conn.(*tls.Conn); !tlsAlready {
		if ok, _ := client.Extension("STARTTLS"); ok {
			if err := client.StartTLS(tlsConfig); err != nil {
				return fmt.Errorf("%s: STARTTLS: %w", addr, err)
			}
		}
	}
	if server.Username != "" || server.Password != "" {
		if ok, _ := client.Extension("AUTH"); !ok {
			return fmt.Errorf("%s: a username and password are set, but the server offers no AUTH", addr)
		}
		if err := client.Auth(smtp.PlainAuth("", server.Username, server.Password, server.Host)); err != nil {
			return fmt.Errorf("%s: AUTH as %q: %w", addr, server.Username, err)
		}
	}
	if err := client.Mail(m.from.Address); err != nil {
		return fmt.Errorf("%s: MAIL FROM %s: %w", addr, m.from.Address, err)
	}
	for _, to := range m.to {
		if err := client.Rcpt(to.Address); err != nil {
			return fmt.Errorf("%s: RCPT TO %s: %w", addr, to.Address, err)
		}
	}
	w, err := client.Data()
	if err != nil {
		return fmt.Errorf("%s: DATA: %w", addr, err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("%s: writing the mail: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%s: the mail was not taken: %w", addr, err)
	}
	// Taken: a failed QUIT changes nothing.
	_ = client.Quit()
	return nil
}

// helloName is the name the worker greets a server with.
func helloName() string {
	if host, err := os.Hostname(); err == nil && host != "" && !strings.ContainsAny(host, " \t\r\n") {
		return host
	}
	return "localhost"
}

// scrub takes the password (and AUTH PLAIN's encoding of it) out of an
// error's text, should a server have echoed it back.
func scrub(err error, server SMTPServer) error {
	if err == nil || server.Password == "" {
		return err
	}
	text := err.Error()
	secrets := []string{server.Password,
		base64.StdEncoding.EncodeToString([]byte("\x00" + server.Username + "\x00" + server.Password))}
	clean := text
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, secretShown)
	}
	if clean == text {
		return err
	}
	return errors.New(clean)
}

// compose writes m as a MIME message: the HTML body and each attachment
// (base64). Logs left out to stay within the bounds are named in the body.
func compose(m *mailMessage) []byte {
	type file struct {
		name, contentType string
		data              []byte
	}
	var files []file
	var left []string
	total := 0
	for _, a := range m.attachments {
		data, err := readTail(a.path, maxAttachmentBytes)
		if err != nil || len(data) == 0 {
			continue // a step that wrote nothing, or never ran
		}
		if total+len(data) > maxAttachedBytes {
			left = append(left, a.name)
			continue
		}
		total += len(data)
		files = append(files, file{a.name, a.contentType, data})
	}
	body := m.html
	if len(left) > 0 {
		note := fmt.Sprintf("<p>Not attached, to keep the mail under %d MiB: %s. The worker keeps these logs.</p>\n",
			maxAttachedBytes>>20, html.EscapeString(strings.Join(left, ", ")))
		if at := strings.LastIndex(body, "</body>"); at >= 0 {
			body = body[:at] + note + body[at:]
		} else {
			body += note
		}
	}

	var buf bytes.Buffer
	parts := multipart.NewWriter(&buf)
	header := func(name, value string) { fmt.Fprintf(&buf, "%s: %s\r\n", name, value) }
	header("From", m.from.String())
	to := make([]string, len(m.to))
	for i, a := range m.to {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.subject)))
	header("Date", time.Now().Format(time.RFC1123Z))
	header("Message-ID", "<"+randomID()+"@"+helloName()+">")
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": parts.Boundary()}))
	buf.WriteString("\r\n")

	text := textproto.MIMEHeader{}
	text.Set("Content-Type", `text/html; charset="UTF-8"`)
	text.Set("Content-Transfer-Encoding", "base64")
	if w, err := parts.CreatePart(text); err == nil {
		writeBase64(w, []byte(body))
	}
	for _, f := range files {
		part := textproto.MIMEHeader{}
		contentType := f.contentType
		if contentType == "" {
			contentType = `text/plain; charset="UTF-8"`
		}
		part.Set("Content-Type", contentType)
		part.Set("Content-Transfer-Encoding", "base64")
		part.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.name}))
		if w, err := parts.CreatePart(part); err == nil {
			writeBase64(w, f.data)
		}
	}
	parts.Close()
	return buf.Bytes()
}

// readTail reads a file, or its last limit bytes after a line saying so.
func readTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() <= limit {
		return io.ReadAll(io.LimitReader(f, limit))
	}
	if _, err := f.Seek(info.Size()-limit, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("[daguha: the log is %d bytes; these are its last %d; the worker keeps it all at %s]\n", info.Size(), len(data), filepath.Base(path))
	return append([]byte(note), data...), nil
}

// writeBase64 writes data in base64, in lines of 76 characters.
func writeBase64(w io.Writer, data []byte) {
	encoded := base64.StdEncoding.EncodeToString(data)
	for len(encoded) > 76 {
		io.WriteString(w, encoded[:76]+"\r\n")
		encoded = encoded[76:]
	}
	io.WriteString(w, encoded+"\r\n")
}

// oneLine drops line breaks, so no text can add a header.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
