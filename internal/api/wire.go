package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tokend/tokend"
)

// apiToken is the contract's ApiToken (and, with Token set, ApiTokenWithToken)
// plus the extension fields environment and created_at.
type apiToken struct {
	ID          int64                `json:"id"`
	Name        string               `json:"name"`
	Last4       string               `json:"last_4_digits"`
	CreatedBy   string               `json:"created_by"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Resources   []resourcePermission `json:"resources"`
	Environment tokend.Environment   `json:"environment"`
	CreatedAt   time.Time            `json:"created_at"`
	LastUsedAt  *time.Time           `json:"last_used_at"`
	Token       string               `json:"token,omitempty"`
	guardsJSON
}

type resourcePermission struct {
	ResourceType tokend.ResourceType `json:"resource_type"`
	ResourceID   int64               `json:"resource_id"`
	AccessLevel  tokend.AccessLevel  `json:"access_level"`
}

// toAPIToken is t as answers show it, its quota as of now.
func toAPIToken(t *tokend.Token, now time.Time) apiToken {
	out := apiToken{
		ID: t.ID, Name: t.Name, Last4: t.Last4, CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt,
		Environment: t.Environment, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt,
		Resources:  make([]resourcePermission, len(t.Permissions)),
		guardsJSON: toGuardsJSON(t, now),
	}
	for i, p := range t.Permissions {
		out.Resources[i] = resourcePermission{ResourceType: p.ResourceType, ResourceID: p.ResourceID, AccessLevel: p.Level}
	}
	return out
}

func toIssuedToken(t *tokend.IssuedToken, now time.Time) apiToken {
	out := toAPIToken(&t.Token, now)
	out.Token = t.Value
	return out
}

// permissionInput is one element of "resources" in a request. resource_id may
// be an integer or a numeric string; resource_type accepts the aliases inbox
// and sending_domain.
type permissionInput struct {
	ResourceType resourceTypeInput  `json:"resource_type"`
	ResourceID   idInput            `json:"resource_id"`
	AccessLevel  tokend.AccessLevel `json:"access_level"`
}

type resourceTypeInput tokend.ResourceType

func (t *resourceTypeInput) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return tokend.Invalid("resources", "resource_type must be a string")
	}
	rt, ok := tokend.ParseResourceType(s)
	if !ok {
		return tokend.Invalid("resources", "resource_type must be one of account, project, sandbox, domain")
	}
	*t = resourceTypeInput(rt)
	return nil
}

type idInput int64

func (id *idInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return tokend.Invalid("resources", "resource_id must be a positive integer or a string of digits")
		}
		b = []byte(s)
	}
	n, ok := parseID(string(b))
	if !ok {
		return tokend.Invalid("resources", "resource_id must be a positive integer or a string of digits")
	}
	*id = idInput(n)
	return nil
}

// parseID parses a resource id: decimal digits only (no sign, space or
// exponent), 1 to MaxInt64.
func parseID(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

func toPermissions(in []permissionInput) ([]tokend.Permission, error) {
	out := make([]tokend.Permission, len(in))
	for i, p := range in {
		if p.ResourceType == "" {
			return nil, tokend.Invalid("resources", "resource_type is required")
		}
		out[i] = tokend.Permission{ResourceType: tokend.ResourceType(p.ResourceType), ResourceID: int64(p.ResourceID), Level: p.AccessLevel}
	}
	return out, nil
}

// expiryInput is expires_at: absent (server default), null (never), or an
// ISO 8601 time with a zone.
type expiryInput tokend.Expiry

func (e *expiryInput) UnmarshalJSON(b []byte) error {
	e.Set = true
	if string(bytes.TrimSpace(b)) == "null" {
		e.At = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			e.At = &t
			return nil
		}
	}
	return tokend.Invalid("expires_at", "must be an ISO 8601 time with a zone, such as 2030-01-31T12:00:00Z, or null")
}

// IssuedTokenJSON is a just-issued token in the contract's ApiTokenWithToken
// shape, for callers outside HTTP (the CLI's --json output).
func IssuedTokenJSON(t *tokend.IssuedToken) any { return toIssuedToken(t, time.Now()) }

// TokenJSON is a token in the API's shape, its quota as of now, for
// callers outside HTTP.
func TokenJSON(t *tokend.Token) any { return toAPIToken(t, time.Now()) }
