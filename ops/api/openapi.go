package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the OpenAPI 3 document of every call the API serves,
// written as YAML (its anchors say which of Dagu's calls answer the same
// under /api/v1 and /api/v2) and served as JSON.
//
//go:embed openapi.yaml
var openAPIYAML []byte

var openAPIDocument = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(jsonable(doc))
})

// OpenAPI is the API's OpenAPI document, as JSON.
func OpenAPI() ([]byte, error) { return openAPIDocument() }

// jsonable makes a decoded YAML value encodable as JSON: maps with keys
// other than strings (YAML allows them) get their keys as text.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for key, value := range v {
			v[key] = jsonable(value)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for key, value := range v {
			out[fmt.Sprint(key)] = jsonable(value)
		}
		return out
	case []any:
		for i, value := range v {
			v[i] = jsonable(value)
		}
		return v
	}
	return v
}

// openAPI serves the document under both prefixes.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	doc, err := OpenAPI()
	if err != nil {
		writeFailure(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}
