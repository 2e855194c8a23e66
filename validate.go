package tokend

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	maxNameLength    = 255
	maxLifetimeYears = 5
)

// expiry resolves an expires_at input: the server default when unset, nil for
// never, otherwise a time in the future at most five years away.
func (s *Service) expiry(fe *FieldErrors, e Expiry, now time.Time) *time.Time {
	if !e.Set {
		if s.opts.DefaultTTL > 0 {
			t := now.Add(s.opts.DefaultTTL)
			return &t
		}
		return nil
	}
	if e.At == nil {
		return nil
	}
	t := e.At.UTC().Truncate(time.Microsecond)
	switch {
	case !t.After(now):
		fe.Add("expires_at", "must be in the future")
	case t.After(now.AddDate(maxLifetimeYears, 0, 0)):
		fe.Add("expires_at", fmt.Sprintf("must be at most %d years from now", maxLifetimeYears))
	}
	return &t
}

func validateName(fe *FieldErrors, field, name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		fe.Add(field, "can't be blank")
	case utf8.RuneCountInString(name) > maxNameLength:
		fe.Add(field, fmt.Sprintf("is too long (maximum is %d characters)", maxNameLength))
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		fe.Add(field, "must not contain control characters")
	}
	return name
}

func validatePermissions(fe *FieldErrors, perms []Permission) {
	seen := make(map[resourceKey]bool, len(perms))
	for _, p := range perms {
		if !p.Level.Valid() {
			fe.Add("resources", "access_level must be 10 (viewer) or 100 (admin)")
		}
		if p.ResourceID <= 0 {
			fe.Add("resources", "resource_id must be a positive integer")
		}
		k := resourceKey{p.ResourceType, p.ResourceID}
		if seen[k] {
			fe.Add("resources", fmt.Sprintf("%s %d is listed more than once", p.ResourceType, p.ResourceID))
		}
		seen[k] = true
	}
}

var tokenSuffix = regexp.MustCompile(` token \d+$`)

// baseName strips one trailing " token <id>" so that names do not stack on reset.
func baseName(name string) string {
	return tokenSuffix.ReplaceAllString(name, "")
}
