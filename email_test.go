package tokend_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

func keyring(t *testing.T) *tokend.Keyring {
	t.Helper()
	key, err := tokend.ParseSecretsKey(tokend.NewSecretsKey())
	if err != nil {
		t.Fatal(err)
	}
	k, err := tokend.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Domains made before tokend sent email get a DKIM key on the next start,
// once, and show its DNS record from then on.
func TestEnsureDomainKeysForDomainsWithoutOne(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	format, _ := apikey.NewFormat("tk")
	svc := tokend.NewService(store, tokend.Options{Format: format, Keyring: keyring(t), DKIMKeyBits: 1024})
	_, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	old := tokend.Resource{Type: tokend.ResourceDomain, AccountID: admin.AccountID, Name: "old.example.com"}
	if err := store.Write(ctx, func(tx tokend.Tx) error { return tx.CreateResource(ctx, &old) }); err != nil {
		t.Fatal(err)
	}
	keys := func() []string {
		v, err := svc.GetResource(ctx, &admin.Token, tokend.ResourceDomain, old.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range v.DNS {
			out = append(out, r.Key)
		}
		return out
	}
	if got := strings.Join(keys(), ","); got != "spf,dmarc" {
		t.Fatalf("records before = %s", got)
	}
	if n, err := svc.EnsureDomainKeys(ctx); err != nil || n != 1 {
		t.Fatalf("EnsureDomainKeys = %d, %v; want 1", n, err)
	}
	if got := strings.Join(keys(), ","); got != "spf,dkim,dmarc" {
		t.Errorf("records after = %s", got)
	}
	if n, err := svc.EnsureDomainKeys(ctx); err != nil || n != 0 {
		t.Errorf("EnsureDomainKeys again = %d, %v; want 0", n, err)
	}
}

func TestSecretsKeyCheck(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mine := keyring(t)
	svc := tokend.NewService(store, tokend.Options{Keyring: mine})
	if has, err := tokend.HasSecrets(ctx, store); err != nil || has {
		t.Fatalf("a new database has secrets: %v %v", has, err)
	}
	if created, err := svc.CheckSecretsKey(ctx); err != nil || !created {
		t.Fatalf("first check: %v %v", created, err)
	}
	if created, err := svc.CheckSecretsKey(ctx); err != nil || created {
		t.Fatalf("second check with the same key: %v %v", created, err)
	}
	other := tokend.NewService(store, tokend.Options{Keyring: keyring(t)})
	if _, err := other.CheckSecretsKey(ctx); !errors.Is(err, tokend.ErrSecretsKeyMismatch) {
		t.Errorf("another key: %v, want ErrSecretsKeyMismatch", err)
	}
	sealed := mine.Seal("purpose a", []byte("secret"))
	if _, err := mine.Open("purpose b", sealed); !errors.Is(err, tokend.ErrWrongSecretsKey) {
		t.Errorf("opened for another purpose: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := mine.Open("purpose a", sealed); !errors.Is(err, tokend.ErrWrongSecretsKey) {
		t.Errorf("opened an altered value: %v", err)
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := tokend.ParseSecretsKey(bad); err == nil {
			t.Errorf("ParseSecretsKey(%q) accepted", bad)
		}
	}
}

// Validate keeps an attachment's type as tokend writes it (lower-case names,
// values quoted where they need it) and refuses what cannot be sent in base64
// or does not parse, naming the attachment.
func TestEmailValidateAttachmentTypes(t *testing.T) {
	tests := []struct {
		name, typ, filename string
		want, wantErr       string // the type kept, or the error of attachments[0].type
	}{
		{"plain", "text/plain", "a.txt", "text/plain", ""},
		{"parameters", `Text/Plain; Charset="ISO-8859-1"; format=flowed`, "a.txt", "text/plain; charset=ISO-8859-1; format=flowed", ""},
		{"a value that needs quotes", "application/x-a; note=\"a b;c\"", "a", `application/x-a; note="a b;c"`, ""},
		{"derived", "", "a.PDF", "application/pdf", ""},
		{"derived, none known", "", "a", "application/octet-stream", ""},
		{"multipart", "multipart/mixed; boundary=XB", "a", "", "must not be a multipart or message type"},
		{"message", "MESSAGE/rfc822", "a", "", "must not be a multipart or message type"},
		{"no subtype", "text/", "a", "", "is not a valid MIME type"},
		{"no slash", "foo", "a", "", "is not a valid MIME type"},
		{"bad parameter", "text/plain; =x", "a", "", "is not a valid MIME type"},
		{"control character", "text/plain\x01", "a", "", "is not a valid MIME type"},
		{"encoded control character", "text/plain; a*=utf-8''%00", "a", "", "is not a valid MIME type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tokend.Email{From: tokend.Address{Email: "a@example.com"}, To: []tokend.Address{{Email: "b@example.org"}}, Subject: "s", Text: "t",
				Attachments: []tokend.Attachment{{Filename: tt.filename, Content: []byte("x"), Type: tt.typ}}}
			err := e.Validate()
			if tt.wantErr != "" {
				var te *tokend.Error
				if !errors.As(err, &te) || !slices.Equal(te.Fields["attachments[0].type"], []string{tt.wantErr}) {
					t.Errorf("error %v, want attachments[0].type %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || e.Attachments[0].Type != tt.want {
				t.Errorf("type %q (error %v), want %q", e.Attachments[0].Type, err, tt.want)
			}
		})
	}
}
