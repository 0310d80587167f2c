package api_test

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/daguha/daguha/ops/api"
)

// pathParam is a {param} of a path.
var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// The OpenAPI document is valid OpenAPI 3 (kin-openapi's validator),
// served the same under both prefixes, has every route the server
// registers, and every operation it has answers (neither 405 nor the
// "no API endpoint" of a path no route serves).
func TestOpenAPIDocumentMatchesTheRoutes(t *testing.T) {
	env := startDagu(t, api.Options{})
	env.seed(t)
	code, v2 := env.do(t, "GET", "/api/v2/openapi.json", "")
	_, v1 := env.do(t, "GET", "/api/v1/openapi.json", "")
	if code != http.StatusOK || string(v1) != string(v2) {
		t.Fatalf("HTTP %d; the document differs between /api/v1 and /api/v2", code)
	}
	doc, err := openapi3.NewLoader().LoadFromData(v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}

	// Every route the mux serves is documented.
	documented := map[string]bool{}
	type operation struct{ method, path string }
	var operations []operation
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+pathParam.ReplaceAllString(path, "{}")] = true
			operations = append(operations, operation{method, path})
		}
	}
	routes := env.api.Routes()
	for _, route := range routes {
		if !documented[pathParam.ReplaceAllString(route, "{}")] {
			t.Errorf("route %s is not in the OpenAPI document", route)
		}
	}
	t.Logf("%d routes, %d documented operations", len(routes), len(operations))
	if len(routes) != len(operations) {
		t.Errorf("%d routes, %d documented operations", len(routes), len(operations))
	}

	// Every documented operation answers: reads first, then writes, the
	// deletes last, each with the seeded DAG, run and step.
	rank := map[string]int{"GET": 0, "POST": 1, "PUT": 1, "DELETE": 2}
	sort.Slice(operations, func(i, j int) bool {
		a, b := operations[i], operations[j]
		if rank[a.method] != rank[b.method] {
			return rank[a.method] < rank[b.method]
		}
		return a.path < b.path
	})
	values := map[string]string{"{name}": "dagu-etl", "{fileName}": "dagu-etl", "{dag_run_id}": "r-done", "{dagRunId}": "r-done", "{step}": "extract", "{stepName}": "extract"}
	for _, op := range operations {
		path := pathParam.ReplaceAllStringFunc(op.path, func(param string) string { return values[param] })
		body := ""
		if op.method == "POST" || op.method == "PUT" {
			body = "{}"
		}
		code, data := env.do(t, op.method, path, body)
		if code == http.StatusMethodNotAllowed || code == http.StatusNotFound && strings.Contains(string(data), "no API endpoint") {
			t.Errorf("%s %s (%s): HTTP %d %s: documented but not served", op.method, op.path, path, code, data)
		}
	}
}
