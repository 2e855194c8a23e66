package tokend_test

import (
	"fmt"
	"testing"

	"github.com/tokend/tokend"
)

// Error reads as sentences wherever it is printed: logs, wrapped errors and
// the CLI's refusals, which say e.Sentences() after the command's name.
func TestErrorSentences(t *testing.T) {
	tests := []struct {
		name string
		err  *tokend.Error
		want string
	}{
		{"a message without fields", tokend.Errorf(tokend.ENOTFOUND, "no account 7"),
			"not_found: no account 7"},
		{"one field, one message", tokend.Invalid("password", "is too short (minimum is 10 characters)").(*tokend.Error),
			"invalid: password is too short (minimum is 10 characters)"},
		{"fields in alphabetical order", &tokend.Error{Code: tokend.EINVALID, Message: "Validation failed", Fields: map[string][]string{
			"password": {"is too short (minimum is 10 characters)"}, "name": {"can't be blank"}}},
			"invalid: name can't be blank; password is too short (minimum is 10 characters)"},
		{"each message of a field in its own clause", &tokend.Error{Code: tokend.EINVALID, Fields: map[string][]string{
			"email": {"can't be blank", "is not a valid email address"}}},
			"invalid: email can't be blank; email is not a valid email address"},
		{"base messages first, without a field name", &tokend.Error{Code: tokend.EINVALID, Fields: map[string][]string{
			"name": {"can't be blank"}, "base": {"the account has too many tokens"}}},
			"invalid: the account has too many tokens; name can't be blank"},
		{"underscores of a field name as spaces", tokend.Invalid("domain_name", "is not a domain name").(*tokend.Error),
			"invalid: domain name is not a domain name"},
		{"fields without messages: the message", &tokend.Error{Code: tokend.EINVALID, Message: "Validation failed", Fields: map[string][]string{"name": nil}},
			"invalid: Validation failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if got := fmt.Errorf("create account: %w", tt.err).Error(); got != "create account: "+tt.want {
				t.Errorf("wrapped: %q", got)
			}
		})
	}
}
