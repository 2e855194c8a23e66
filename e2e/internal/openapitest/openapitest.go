// Package openapitest checks HTTP responses against tokend's own OpenAPI
// document (internal/api/openapi.json, embedded as api.OpenAPI). It is for
// the tests of the e2e module, which is where tokend depends on an OpenAPI
// validator: the root module's tests record what they see instead
// (testutil.Transcript), and e2e checks their transcripts with it.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	doc    *openapi3.T
	router routers.Router
	err    error
)

// load reads and validates the document, once.
func load() (*openapi3.T, routers.Router, error) {
	once.Do(func() {
		// The change stream's body is text, checked as the string it is.
		openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
		d, e := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if e != nil {
			err = e
			return
		}
		if e := d.Validate(context.Background()); e != nil {
			err = e
			return
		}
		doc = d
		router, err = gorillamux.NewRouter(d)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	return doc, router, nil
}

// Validate returns why a response does not match the operation the document
// describes for method and path (path with its query), including an
// undocumented status, or nil when it does. A request no operation matches
// must have answered 404 or 405 with {"error": "..."}. It is safe for
// concurrent use.
func Validate(method, path string, reqBody []byte, status int, header http.Header, body []byte) error {
	_, r, e := load()
	if e != nil {
		return e
	}
	hr, e := http.NewRequest(method, "http://127.0.0.1:8080"+path, bytes.NewReader(reqBody))
	if e != nil {
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	route, params, e := r.FindRoute(hr)
	if e != nil {
		if !strings.HasPrefix(path, "/api/") && status == http.StatusNotFound && strings.HasPrefix(header.Get("Content-Type"), "text/html") {
			return nil // outside the API, the dashboard answers with its own page
		}
		var errs []error
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			errs = append(errs, fmt.Errorf("%s %s answered %d but the OpenAPI document has no such operation", method, path, status))
		}
		var b struct{ Error string }
		if json.Unmarshal(body, &b) != nil || b.Error == "" {
			errs = append(errs, fmt.Errorf("%s %s: body %s, want {\"error\": ...}", method, path, body))
		}
		return errors.Join(errs...)
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
		return fmt.Errorf("%s %s → %d %s\ndoes not match the OpenAPI document: %w", method, path, status, body, e)
	}
	return nil
}

// Check reports, through t, what Validate finds wrong with a response.
func Check(t testing.TB, method, path string, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	if e := Validate(method, path, reqBody, status, header, body); e != nil {
		t.Error(e)
	}
}

// ValidateSchema returns why value, decoded JSON, does not match the schema
// name of the document's components, or nil when it does.
func ValidateSchema(name string, value any) error {
	d, _, e := load()
	if e != nil {
		return e
	}
	s := d.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return fmt.Errorf("the OpenAPI document has no schema %q", name)
	}
	if e := s.Value.VisitJSON(value); e != nil {
		return fmt.Errorf("does not match the schema %s: %w", name, e)
	}
	return nil
}
