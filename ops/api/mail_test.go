package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/api"
)

// A DAG file with an SMTP password written in it: whoever reads the DAG
// (a read token, or the full one) gets its text with the password masked,
// and no answer of the API holds it. One that only names a variable is
// shown as written.
func TestReadersNeverSeeALiteralSMTPPassword(t *testing.T) {
	const password = "hunter2-in-the-file"
	const file = `name: mailer
smtp:
  host: smtp.example.com
  port: 587
  username: alerts@example.com
  password: "` + password + `"
mailOn: {failure: true}
errorMail: {from: dagu@example.com, to: ops@example.com}
steps:
  - name: a
    command: "true"
    mailOnError: true
---
name: other
smtp:
  host: smtp.example.com
  password: ${SMTP_PASS}
steps:
  - name: b
    command: "true"
`
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	srv := httptest.NewServer(newAPI(t, leader.Server, nil, api.Options{Tokens: []string{"full"}, ReadTokens: []string{"reader"}}))
	t.Cleanup(srv.Close)
	send := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := send("POST", "/api/v2/dags", "full", pushBody(t, map[string]string{"mailer.yaml": file})); code != http.StatusOK {
		t.Fatalf("push: HTTP %d %s", code, body)
	}
	if code, body := send("POST", "/api/v2/dag-runs", "full", `{"dag_name": "mailer", "dag_run_id": "m1"}`); code != http.StatusCreated {
		t.Fatalf("enqueue: HTTP %d %s", code, body)
	}
	for _, token := range []string{"reader", "full"} {
		for _, path := range []string{"/api/v2/dags/mailer", "/api/v2/dags", "/api/v2/dag-runs/m1", "/api/v2/dag-runs"} {
			code, body := send("GET", path, token, "")
			if code != http.StatusOK {
				t.Fatalf("GET %s with %s: HTTP %d %s", path, token, code, body)
			}
			if strings.Contains(body, password) {
				t.Errorf("GET %s with the %s token shows the SMTP password: %s", path, token, body)
			}
		}
		_, body := send("GET", "/api/v2/dags/mailer", token, "")
		if !strings.Contains(body, `password: \u003chidden\u003e`) || !strings.Contains(body, `password: ${SMTP_PASS}`) ||
			!strings.Contains(body, "username: alerts@example.com") {
			t.Errorf("the source with the %s token: want the literal password masked and the rest as written: %s", token, body)
		}
	}
}
