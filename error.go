package tokend

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes. Each maps to exactly one HTTP status in internal/api.
const (
	ENOTFOUND     = "not_found"    // the thing does not exist or the caller may not know it exists
	EUNAUTHORIZED = "unauthorized" // no usable credentials
	EFORBIDDEN    = "forbidden"    // authenticated, visible, but not allowed
	EINVALID      = "invalid"      // input fails validation; Fields says where
	ERATELIMITED  = "rate_limited" // too many requests; retry later
	ETOOLARGE     = "too_large"    // the input is larger than allowed
	EUNAVAILABLE  = "unavailable"  // the server is not set up for this; the message says how
	EINTERNAL     = "internal"     // anything else; the message is never shown to clients
)

// Error is the one error type of tokend. Message is safe to show to API clients;
// wrapped internal errors are not.
type Error struct {
	Code    string
	Message string
	// Reason is a machine-readable detail, such as "invalid_api_key" or "expired_api_key".
	Reason string
	// Fields holds validation messages by input field; "base" is for the whole record.
	Fields map[string][]string
}

// Error is the code and what went wrong, in sentences: "invalid: email is
// not a valid email address; password is too short (minimum is 10
// characters)". It reaches logs and wrapped errors; clients get Message and
// Fields instead.
func (e *Error) Error() string {
	return e.Code + ": " + e.Sentences()
}

// Sentences says what e holds, for people: the validation messages, one
// clause per message, each led by the field it is about (its underscores as
// spaces), the messages about the whole input ("base") first and unled, the
// fields in alphabetical order: "name can't be blank; password is too short
// (minimum is 10 characters)". Without validation messages it is Message.
func (e *Error) Sentences() string {
	fields := make([]string, 0, len(e.Fields))
	for f := range e.Fields {
		if f != "base" {
			fields = append(fields, f)
		}
	}
	sort.Strings(fields)
	clauses := append([]string(nil), e.Fields["base"]...)
	for _, f := range fields {
		for _, msg := range e.Fields[f] {
			clauses = append(clauses, strings.ReplaceAll(f, "_", " ")+" "+msg)
		}
	}
	if len(clauses) == 0 {
		return e.Message
	}
	return strings.Join(clauses, "; ")
}

// Errorf returns an *Error with the given code and a client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// reason returns err's Reason, or "" when it has none.
func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// FieldErrors collects validation messages by field. The zero value is ready to use.
type FieldErrors map[string][]string

// Add records msg against field.
func (f *FieldErrors) Add(field, msg string) {
	if *f == nil {
		*f = FieldErrors{}
	}
	(*f)[field] = append((*f)[field], msg)
}

// Err returns an EINVALID *Error carrying the messages, or nil if there are none.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "Validation failed", Fields: f}
}

// String is every message, each after its field, fields in name order:
// "From is required; RCPT TO has too many recipients".
func (f FieldErrors) String() string {
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		for _, msg := range f[name] {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(name + " " + msg)
		}
	}
	return b.String()
}

// Invalid returns an EINVALID error with one message on one field.
func Invalid(field, msg string) error {
	var f FieldErrors
	f.Add(field, msg)
	return f.Err()
}
