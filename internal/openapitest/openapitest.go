// Package openapitest checks HTTP responses against tokend's own OpenAPI
// document (internal/api/openapi.json). It is for tests.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tokend/tokend/internal/api"
)

var (
	once   sync.Once
	router routers.Router
	err    error
)

func load(t testing.TB) routers.Router {
	t.Helper()
	once.Do(func() {
		// The change stream's body is text, checked as the string it is.
		openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
		doc, e := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if e != nil {
			err = e
			return
		}
		if e := doc.Validate(context.Background()); e != nil {
			err = e
			return
		}
		router, err = gorillamux.NewRouter(doc)
	})
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return router
}

// Check reports, through t, a response that does not match the operation the
// document describes for method and path (path with its query), including an
// undocumented status. A request no operation matches must have answered 404
// or 405 with {"error": "..."}.
func Check(t testing.TB, method, path string, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	hr, _ := http.NewRequest(method, "http://127.0.0.1:8080"+path, bytes.NewReader(reqBody))
	route, params, e := load(t).FindRoute(hr)
	if e != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s answered %d but the OpenAPI document has no such operation", method, path, status)
		}
		var b struct{ Error string }
		if json.Unmarshal(body, &b) != nil || b.Error == "" {
			t.Errorf("%s %s: body %s, want {\"error\": ...}", method, path, body)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: in.Options,
	}
	if e := openapi3filter.ValidateResponse(context.Background(), out); e != nil {
		t.Errorf("%s %s → %d %s\ndoes not match the OpenAPI document: %v", method, path, status, body, e)
	}
}
