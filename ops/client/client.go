package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/daguha/daguha/ops/wire"
)

// DefaultMaxResponseBytes bounds a JSON answer when Options leave it
// unset: far above any answer of a healthy server (a page of 10000 runs
// with their output tails), low enough that a wrong server cannot make
// a client take all its memory.
const DefaultMaxResponseBytes = 512 << 20

// maxErrorBytes bounds the body of an error answer kept in an *Error.
const maxErrorBytes = 1 << 20

// Options configure a Client. The zero value is a client of an open API
// over HTTP, with no time limit but its callers' contexts.
type Options struct {
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// TLS verifies a server that speaks HTTPS (nil: the system's
	// roots). It is not used when HTTPClient is set.
	TLS *tls.Config
	// DisableKeepAlives opens a connection for each call, for harnesses
	// that pause and kill servers: a call never rides a connection to a
	// server that was frozen since. Not used when HTTPClient is set.
	DisableKeepAlives bool
	// HTTPClient, when set, sends the requests: its transport, redirect
	// policy and time-out are the caller's.
	HTTPClient *http.Client
	// Timeout bounds each call answered with JSON, from sending the
	// request to decoding the answer (0: only the context bounds it).
	// Streams (snapshots, step logs) and a snapshot restore are bounded
	// by their context alone; a blocking query waits its wait and more.
	Timeout time.Duration
	// MaxResponseBytes bounds a JSON answer (0: DefaultMaxResponseBytes).
	MaxResponseBytes int64
}

// Client calls one server's HTTP API. It is safe for concurrent use.
//
// It follows no redirect (unless its HTTPClient does): the API never
// answers with one, and following it would turn a POST into a GET
// elsewhere, an enqueue into a read. A redirect is an *Error.
type Client struct {
	address string
	options Options
	http    *http.Client
}

// New returns a client of the API at address (a base URL such as
// http://127.0.0.1:8080; a trailing slash is dropped).
func New(address string, options Options) *Client {
	if options.MaxResponseBytes <= 0 {
		options.MaxResponseBytes = DefaultMaxResponseBytes
	}
	httpClient := options.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if options.TLS != nil || options.DisableKeepAlives {
			httpClient.Transport = &http.Transport{TLSClientConfig: options.TLS, DisableKeepAlives: options.DisableKeepAlives}
		}
	}
	return &Client{address: strings.TrimRight(address, "/"), options: options, http: httpClient}
}

// Address is the base URL the client calls.
func (c *Client) Address() string { return c.address }

// WithTimeout returns a client like c whose JSON calls have another time
// limit (0: none), for calls that may be held through an election.
func (c *Client) WithTimeout(timeout time.Duration) *Client {
	copied := *c
	copied.options.Timeout = timeout
	return &copied
}

// Error is an answer with a status of 300 or more.
type Error struct {
	Method string
	// Path is the request's path, without its query.
	Path   string
	Status int
	// Message is the API's message (the "error" of its JSON body), or ""
	// when the body was not one.
	Message string
	// Body is the answer's body, at most 1 MiB of it; Header its header.
	Body   []byte
	Header http.Header
}

func (e *Error) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// StatusCode is the HTTP status of the *Error in err's chain, or 0 when
// there is none (no error, or the server was not reached or not heard).
func StatusCode(err error) int {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Status
	}
	return 0
}

// Send sends one request with the client's token and returns the answer
// whatever its status, for callers that look at everything (tests that
// probe the API with odd requests). The caller closes the body; nothing
// bounds its size or its time but ctx. A nil body sends none.
func (c *Client) Send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	return c.send(ctx, method, path, body, "application/json")
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.address+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if c.options.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.options.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.address+path, err)
	}
	return resp, nil
}

// Do sends a request and decodes a JSON answer into out (unless out is
// nil), within the client's Timeout. The body is encoded as JSON, or sent
// as it is when it is an io.Reader; nil sends none. It returns the
// answer's status (0 when there was no answer); a status of 300 or more
// is also an *Error, and out is then left alone.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	if c.options.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.options.Timeout)
		defer cancel()
	}
	return c.exchange(ctx, method, path, body, "application/json", out)
}

// exchange is Do without the client's time limit.
func (c *Client) exchange(ctx context.Context, method, path string, body any, contentType string, out any) (int, error) {
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		reader = b
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode the request: %w", method, path, err)
		}
		reader = bytes.NewReader(data)
	}
	resp, err := c.send(ctx, method, path, reader, contentType)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, answerError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.options.MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if int64(len(data)) > c.options.MaxResponseBytes {
		return resp.StatusCode, fmt.Errorf("%s %s: the answer is larger than %d bytes", method, path, c.options.MaxResponseBytes)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// stream sends a request and returns the body of a successful answer,
// bounded by ctx alone.
func (c *Client) stream(ctx context.Context, method, path string) (io.ReadCloser, http.Header, error) {
	resp, err := c.send(ctx, method, path, nil, "application/json")
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, nil, answerError(resp)
	}
	return resp.Body, resp.Header, nil
}

// answerError reads an error answer into an *Error.
func answerError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := &Error{Method: resp.Request.Method, Path: resp.Request.URL.Path, Status: resp.StatusCode, Body: data, Header: resp.Header}
	var body wire.Error
	if json.Unmarshal(data, &body) == nil {
		e.Message = body.Error
	}
	return e
}
