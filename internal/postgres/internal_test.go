package postgres

import "testing"

func TestPlaceholders(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"WHERE a = ? AND b = ?", "WHERE a = $1 AND b = $2"},
		{"WHERE a LIKE ? ESCAPE '\\' AND c = '?' AND d = ?", "WHERE a LIKE $1 ESCAPE '\\' AND c = '?' AND d = $2"},
	} {
		if got := placeholders(tt.in); got != tt.want {
			t.Errorf("placeholders(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactedKeepsNoPassword(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://tokend:s3cret@db.example:5432/tokend?sslmode=require", "postgres://tokend:xxxxx@db.example:5432/tokend?sslmode=require"},
		{"postgres://tokend@db.example/tokend", "postgres://tokend:xxxxx@db.example/tokend"},
		{"postgres://db.example/tokend", "postgres://db.example/tokend"},
		{"host=db password=s3cret", "(database)"},
	} {
		if got := redacted(tt.in); got != tt.want {
			t.Errorf("redacted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
