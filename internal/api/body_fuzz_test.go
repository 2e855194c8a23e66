package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// FuzzTokenBody decodes one body as the create and as the PATCH of a token,
// the way createToken and updateToken do: decode, then toPermissions.
//
// Neither panics; every error is an invalid *tokend.Error naming a field, or
// *http.MaxBytesError for a body over the cap. An accepted body is one JSON
// object (or null) and decodes to what it says, field by field (see wireBody);
// its ids are positive digits. And it round-trips: written back as canonical
// JSON and decoded again, it yields the same request.
func FuzzTokenBody(f *testing.F) {
	for _, seed := range []string{
		`{"name":"ci","resources":[{"resource_type":"project","resource_id":1,"access_level":100}]}`,
		`{"name":"ci","environment":"test","expires_at":"2030-01-31T12:00:00Z","resources":[]}`,
		`{"name":"x","expires_at":null}`,
		`{"expires_at":"2030-01-31T12:00:00.123456789+05:30"}`,
		`{"expires_at":"2030-01-31T12:00:00,5-00:00"}`,
		`{"expires_at":"2030-01-31"}`,
		`{"expires_at":12}`,
		`{"resources":[{"resource_type":"inbox","resource_id":"7","access_level":10},{"resource_type":"sending_domain","resource_id":8,"access_level":10}]}`,
		`{"resources":[{"resource_type":"project","resource_id":-1,"access_level":10}]}`,
		`{"resources":[{"resource_type":"project","resource_id":0,"access_level":10}]}`,
		`{"resources":[{"resource_type":"project","resource_id":"+5","access_level":10}]}`,
		`{"resources":[{"resource_type":"project","resource_id":"9223372036854775808","access_level":10}]}`,
		`{"resources":[{"resource_type":"project","resource_id":1.5,"access_level":10}]}`,
		`{"resources":[{"resource_type":"galaxy","resource_id":1,"access_level":10}]}`,
		`{"resources":[{"resource_id":1,"access_level":10}]}`,
		`{"resources":[{"resource_type":7}]}`,
		`{"resources":null,"name":null}`,
		`{"resources":{}}`,
		`{"name":1}`,
		`{"environment":""}`,
		`{"NAME":"upper","Resources":[]}`,
		`{"name":"a","name":"b"}`,
		`{"name":"\ud800"}`,
		`{} {}`,
		`{}garbage`,
		`[]`,
		`null`,
		`"x"`,
		``,
		` `,
		`{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var create createTokenRequest
		if perms, err := decodeBody(body, &create, func() []permissionInput { return create.Resources }); err == nil {
			checkAccepted(t, body, create.Name, create.Resources != nil, perms)
			var w wireCreate
			if err := json.Unmarshal(body, &w); err != nil {
				t.Fatalf("create accepted %s, which encoding/json reads as: %v", body, err)
			}
			if !reflect.DeepEqual(create.Environment, w.Environment) {
				t.Fatalf("%s: environment decoded as %v", body, create.Environment)
			}
			checkExpiry(t, body, create.ExpiresAt, w.ExpiresAt)
			var again createTokenRequest
			if _, err := decodeBody(canonicalCreate(t, create), &again, func() []permissionInput { return again.Resources }); err != nil {
				t.Fatalf("create %s: accepted, but not its canonical form: %v", body, err)
			}
			if !sameCreate(create, again) {
				t.Fatalf("create %s: decoded %+v, its canonical form %+v", body, create, again)
			}
		} else {
			checkRejected(t, body, err)
		}

		var patch updateTokenRequest
		if perms, err := decodeBody(body, &patch, func() []permissionInput { return resourcesOf(patch) }); err == nil {
			checkAccepted(t, body, patch.Name, patch.Resources != nil, perms)
			var again updateTokenRequest
			if _, err := decodeBody(canonicalPatch(t, patch), &again, func() []permissionInput { return resourcesOf(again) }); err != nil {
				t.Fatalf("patch %s: accepted, but not its canonical form: %v", body, err)
			}
			if !reflect.DeepEqual(patch, again) {
				t.Fatalf("patch %s: decoded %+v, its canonical form %+v", body, patch, again)
			}
		} else {
			checkRejected(t, body, err)
		}
	})
}

// decodeBody runs what the handlers run on a request body: decode into v, then
// toPermissions on the resources it holds.
func decodeBody(body []byte, v any, resources func() []permissionInput) ([]tokend.Permission, error) {
	r := httptest.NewRequest(http.MethodPost, "/api/api_tokens", bytes.NewReader(body))
	if err := decode(httptest.NewRecorder(), r, v); err != nil {
		return nil, err
	}
	return toPermissions(resources())
}

func resourcesOf(req updateTokenRequest) []permissionInput {
	if req.Resources == nil {
		return nil
	}
	return *req.Resources
}

func checkRejected(t *testing.T, body []byte, err error) {
	t.Helper()
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		if len(body) <= maxBodyBytes {
			t.Fatalf("%d bytes reported as over the %d-byte cap", len(body), maxBodyBytes)
		}
		return
	}
	var e *tokend.Error
	if !errors.As(err, &e) || e.Code != tokend.EINVALID || len(e.Fields) == 0 {
		t.Fatalf("%s: error %#v is not an invalid *tokend.Error naming a field", body, err)
	}
}

// wireBody is a token body as encoding/json reads it, with the same field
// matching, before any of tokend's parsing: what the decoded request is held to.
type wireBody struct {
	Name      *string `json:"name"`
	Resources []struct {
		ResourceType json.RawMessage `json:"resource_type"`
		ResourceID   json.RawMessage `json:"resource_id"`
		AccessLevel  json.RawMessage `json:"access_level"`
	} `json:"resources"`
}

// wireCreate adds what only a create body has: a PATCH ignores these fields,
// whatever they hold.
type wireCreate struct {
	Environment *string         `json:"environment"`
	ExpiresAt   json.RawMessage `json:"expires_at"`
}

// checkAccepted holds an accepted body's name and permissions to what the body
// says: a known resource type, the level given, and the id given as digits,
// positive (0 when absent, which the service's validation rejects).
func checkAccepted(t *testing.T, body []byte, name *string, hasResources bool, perms []tokend.Permission) wireBody {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("accepted %q, which is not one JSON value", body)
	}
	if b := bytes.TrimSpace(body); b[0] != '{' && string(b) != "null" {
		t.Fatalf("accepted %q, which is not a JSON object", body)
	}
	var w wireBody
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("accepted %s, which encoding/json reads as: %v", body, err)
	}
	if !reflect.DeepEqual(name, w.Name) {
		t.Fatalf("%s: name decoded as %v", body, name)
	}
	if hasResources != (w.Resources != nil) || len(perms) != len(w.Resources) {
		t.Fatalf("%s: resources decoded as %v", body, perms)
	}
	for i, p := range perms {
		in := w.Resources[i]
		var typ string
		if err := json.Unmarshal(in.ResourceType, &typ); err != nil {
			t.Fatalf("%s: resource_type %s accepted", body, in.ResourceType)
		}
		if rt, ok := tokend.ParseResourceType(typ); !ok || rt != p.ResourceType {
			t.Fatalf("%s: resource_type %s decoded as %q", body, in.ResourceType, p.ResourceType)
		}
		var level tokend.AccessLevel
		if in.AccessLevel != nil && json.Unmarshal(in.AccessLevel, &level) != nil || level != p.Level {
			t.Fatalf("%s: access_level %s decoded as %d", body, in.AccessLevel, p.Level)
		}
		var id int64
		if in.ResourceID != nil {
			digits := string(in.ResourceID)
			if digits[0] == '"' {
				_ = json.Unmarshal(in.ResourceID, &digits)
			}
			var ok bool
			if id, ok = positiveDecimal(digits); !ok {
				t.Fatalf("%s: resource_id %s accepted", body, in.ResourceID)
			}
		}
		if id != p.ResourceID {
			t.Fatalf("%s: resource_id %s decoded as %d", body, in.ResourceID, p.ResourceID)
		}
	}
	return w
}

// checkExpiry holds a decoded expires_at to the body's: absent, null, or the
// same instant and offset.
func checkExpiry(t *testing.T, body []byte, got expiryInput, raw json.RawMessage) {
	t.Helper()
	if got.Set != (raw != nil) || string(raw) == "null" && got.At != nil {
		t.Fatalf("%s: expires_at decoded as %+v", body, got)
	}
	if got.At == nil {
		if got.Set && string(raw) != "null" {
			t.Fatalf("%s: expires_at decoded as never", body)
		}
		return
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	want, err := time.Parse(time.RFC3339Nano, s)
	_, offset := got.At.Zone()
	if _, wantOffset := want.Zone(); err != nil || !got.At.Equal(want) || offset != wantOffset {
		t.Fatalf("%s: expires_at decoded as %v", body, got.At)
	}
}

// canonicalResources writes permissions back in the contract's own form.
func canonicalResources(in []permissionInput) []map[string]any {
	out := make([]map[string]any, len(in))
	for i, p := range in {
		out[i] = map[string]any{"resource_type": string(p.ResourceType), "access_level": int(p.AccessLevel)}
		if p.ResourceID != 0 {
			out[i]["resource_id"] = int64(p.ResourceID)
		}
	}
	return out
}

func canonicalCreate(t *testing.T, req createTokenRequest) []byte {
	t.Helper()
	m := map[string]any{}
	if req.Name != nil {
		m["name"] = *req.Name
	}
	if req.Environment != nil {
		m["environment"] = *req.Environment
	}
	if req.Resources != nil {
		m["resources"] = canonicalResources(req.Resources)
	}
	if req.ExpiresAt.Set {
		m["expires_at"] = nil
		if req.ExpiresAt.At != nil {
			m["expires_at"] = req.ExpiresAt.At.Format(time.RFC3339Nano)
		}
	}
	return marshal(t, m)
}

func canonicalPatch(t *testing.T, req updateTokenRequest) []byte {
	t.Helper()
	m := map[string]any{}
	if req.Name != nil {
		m["name"] = *req.Name
	}
	if req.Resources != nil {
		m["resources"] = canonicalResources(*req.Resources)
	}
	return marshal(t, m)
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameCreate compares two create requests, expiry times by instant.
func sameCreate(a, b createTokenRequest) bool {
	ta, tb := a.ExpiresAt.At, b.ExpiresAt.At
	a.ExpiresAt.At, b.ExpiresAt.At = nil, nil
	if (ta == nil) != (tb == nil) || ta != nil && !ta.Equal(*tb) {
		return false
	}
	return reflect.DeepEqual(a, b)
}
