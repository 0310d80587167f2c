package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindHTTP is Dagu's http executor: the step sends one HTTP request.
const kindHTTP = "http"

// maxHTTPBody is the most of a response body an http step reads; the
// rest is dropped and the output says so.
const maxHTTPBody = 16 << 20

// httpSettings are the http executor's settings (dagfile/executors.go).
type httpSettings struct {
	Method        string            `json:"method"`
	URL           string            `json:"url"`
	Headers       map[string]string `json:"headers"`
	Query         map[string]string `json:"query"`
	Body          string            `json:"body"`
	Timeout       int64             `json:"timeout"`
	Silent        bool              `json:"silent"`
	JSON          bool              `json:"json"`
	SkipTLSVerify bool              `json:"skipTLSVerify"`
}

// httpExecutor sends the step's request, as Dagu's http executor does:
// the command is "METHOD URL" (or the settings' method and url); the
// variables in the url, headers, query and body are expanded as values,
// no shell involved. Its output is the status line and headers then the
// body; with silent only the body (a failed request still prints all);
// with json a JSON object of status_code, headers and body. A status
// outside 2xx fails the step, the status in its error.
type httpExecutor struct{}

func init() { registerExecutor(kindHTTP, httpExecutor{}) }

func (httpExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	spec := t.spec()
	var s httpSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return executorResult(t, nil, fmt.Sprintf("http settings: %v", err))
		}
	}
	r := t.scope()
	if cmd := strings.TrimSpace(spec.GetCommand()); cmd != "" {
		method, rest, ok := strings.Cut(cmd, " ")
		if !ok {
			rest, method = method, ""
		}
		if method != "" {
			s.Method = method
		}
		s.URL = strings.TrimSpace(rest)
	}
	if s.Method == "" {
		s.Method = http.MethodGet
	}
	s.Method = strings.ToUpper(s.Method)
	raw := expandVars(s.URL, r)
	if raw == "" {
		return executorResult(t, nil, "http step needs a url: command: GET https://... or the url setting")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return executorResult(t, nil, fmt.Sprintf("http step: bad url %q: want http:// or https://", raw))
	}
	if len(s.Query) > 0 {
		q := u.Query()
		for k, v := range s.Query {
			q.Set(k, expandVars(v, r))
		}
		u.RawQuery = q.Encode()
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(s.Timeout)*time.Second)
		defer cancel()
	}
	var body io.Reader
	if s.Body != "" {
		body = strings.NewReader(expandVars(s.Body, r))
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, u.String(), body)
	if err != nil {
		return executorResult(t, nil, fmt.Sprintf("http step: %v", err))
	}
	for k, v := range s.Headers {
		req.Header.Set(k, expandVars(v, r))
	}
	client := &http.Client{}
	if s.SkipTLSVerify {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the DAG asked for it (skipTLSVerify)
		client.Transport = tr
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) && s.Timeout > 0 {
			return executorResult(t, nil, fmt.Sprintf("http %s %s: no answer within the timeout of %ds", s.Method, u.Redacted(), s.Timeout))
		}
		if ctx.Err() != nil {
			return stoppedState(ctx)
		}
		return executorResult(t, nil, fmt.Sprintf("http %s %s: %v", s.Method, u.Redacted(), err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody+1))
	cut := len(data) > maxHTTPBody
	if cut {
		data = data[:maxHTTPBody]
	}
	if err != nil {
		return executorResult(t, nil, fmt.Sprintf("http %s %s: reading the response: %v", s.Method, u.Redacted(), err))
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	var out bytes.Buffer
	if s.JSON {
		result := struct {
			StatusCode int                 `json:"status_code,omitempty"`
			Headers    map[string][]string `json:"headers,omitempty"`
			Body       any                 `json:"body"`
		}{}
		if !ok || !s.Silent {
			result.StatusCode, result.Headers = resp.StatusCode, resp.Header
		}
		if err := json.Unmarshal(data, &result.Body); err != nil {
			result.Body = string(data)
		}
		enc, _ := json.MarshalIndent(result, "", " ")
		out.Write(enc)
	} else {
		if !ok || !s.Silent {
			fmt.Fprintf(&out, "%s\n", resp.Status)
			_ = resp.Header.Write(&out)
		}
		out.Write(data)
	}
	if cut {
		fmt.Fprintf(&out, "\n[daguha: the response body was cut at %d bytes]\n", maxHTTPBody)
	}
	failure := ""
	if !ok {
		failure = fmt.Sprintf("http %s %s: status %s (not 2xx)", s.Method, u.Redacted(), resp.Status)
	}
	return executorResult(t, out.Bytes(), failure)
}
