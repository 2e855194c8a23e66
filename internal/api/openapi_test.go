package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"mime"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/api"
)

// contractCopy is the shared API Tokens contract, kept in the repository so
// that the contract test always runs. sharedContract is the original, beside
// the repository in development and CI: when present, the copy must equal it.
const (
	contractCopy   = "testdata/api-tokens.openapi.json"
	sharedContract = "../../../shared/api-tokens.openapi.json"
)

// TestDocumentKeepsTheContract checks that tokend's own OpenAPI document keeps
// every operation, parameter, response and schema of the contract: equal, or
// a superset where tokend documents an extension (an added property, an added
// response code, an optional request body).
func TestDocumentKeepsTheContract(t *testing.T) {
	raw, err := os.ReadFile(contractCopy)
	if err != nil {
		t.Fatal(err)
	}
	switch shared, err := os.ReadFile(sharedContract); {
	case os.IsNotExist(err):
		t.Logf("%s is absent: checked against the copy in %s only", sharedContract, contractCopy)
	case err != nil:
		t.Fatal(err)
	case !bytes.Equal(raw, shared):
		t.Errorf("%s differs from %s: copy the shared contract again", contractCopy, sharedContract)
	}
	var contract, ours map[string]any
	if err := json.Unmarshal(raw, &contract); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(api.OpenAPI, &ours); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"paths", "components"} {
		assertSuperset(t, section, contract[section], ours[section])
	}
	if !reflect.DeepEqual(contract["security"], ours["security"]) {
		t.Errorf("security differs: %v vs %v", contract["security"], ours["security"])
	}
}

// assertSuperset reports where ours drops or changes anything contract has.
// Objects may gain keys; every other value must be equal.
func assertSuperset(t *testing.T, path string, contract, ours any) {
	t.Helper()
	cm, ok := contract.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(contract, ours) {
			t.Errorf("%s: contract has %v, tokend's document has %v", path, contract, ours)
		}
		return
	}
	om, ok := ours.(map[string]any)
	if !ok {
		t.Errorf("%s: contract has an object, tokend's document has %v", path, ours)
		return
	}
	keys := make([]string, 0, len(cm))
	for k := range cm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := om[k]; !ok {
			t.Errorf("%s: tokend's document lacks %q", path, k)
			continue
		}
		assertSuperset(t, path+"/"+strings.ReplaceAll(k, "/", "~1"), cm[k], om[k])
	}
}

// TestServedDocumentIsTheFileOnDisk guards against serving a stale or
// mislabelled copy of internal/api/openapi.json.
func TestServedDocumentIsTheFileOnDisk(t *testing.T) {
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	r := newEnv(t).get("/api/openapi.json", "").want(200)
	if !bytes.Equal(r.Body, onDisk) {
		t.Error("GET /api/openapi.json differs from internal/api/openapi.json")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", r.Header.Get("Content-Type"))
	}
}

// routesOf returns the routes e's server registered, as "METHOD /pattern".
func routesOf(e *env) []string {
	e.t.Helper()
	s, ok := e.srv.Config.Handler.(*api.Server)
	if !ok {
		e.t.Fatalf("the handler is a %T, not an *api.Server", e.srv.Config.Handler)
	}
	return s.Routes()
}

// documented returns the operations of tokend's OpenAPI document, as "METHOD /path".
func documented(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// TestEveryRouteIsDocumented holds the router and the OpenAPI document to the
// same set of operations: each route is documented with its method and path
// template, and each documented operation reaches the route of that name
// rather than the catch-all's 404 or 405.
func TestEveryRouteIsDocumented(t *testing.T) {
	e := newEnv(t) // serves /metrics, as every route is registered
	routes, ops := routesOf(e), documented(t)
	if len(routes) == 0 {
		t.Fatal("the server lists no routes")
	}
	for i, route := range routes {
		t.Run("routed/"+route, func(t *testing.T) {
			if slices.Contains(routes[:i], route) {
				t.Errorf("%s is listed twice", route)
			}
			if !slices.Contains(ops, route) {
				t.Errorf("%s is routed but not documented in openapi.json", route)
			}
		})
	}
	fill := strings.NewReplacer("{account_id}", "1", "{project_id}", "1", "{id}", "1", "{inbox_id}", "1",
		"{attachment_id}", "1", "{delivery_id}", "1", "{message_id}", "0c7fd939-02cf-11ed-88c2-0a58a9feac02")
	for _, op := range ops {
		t.Run("documented/"+op, func(t *testing.T) {
			if !slices.Contains(routes, op) {
				t.Errorf("%s is documented but Routes() does not list it", op)
			}
			method, path, _ := strings.Cut(op, " ")
			if path = fill.Replace(path); strings.Contains(path, "{") {
				t.Fatalf("no value for a parameter of %s", op)
			}
			e := e.with(t)
			r := e.send(request{method: method, path: path})
			if r.Status == 404 || r.Status == 405 {
				t.Fatalf("%s %s answered %d: the catch-all, not a route", method, path, r.Status)
			}
			if got := loggedRoute(t, e, r.Header.Get("X-Request-Id")); got != op {
				t.Errorf("%s %s was served by route %q, want %q", method, path, got, op)
			}
		})
	}
}

// loggedRoute returns the route the access log names for the request with id.
func loggedRoute(t *testing.T, e *env, id string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			Route     string `json:"route"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "request" && line.RequestID == id {
			return line.Route
		}
	}
	t.Fatalf("no access log line for request %s", id)
	return ""
}
