package api_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/testutil"
)

// githubKey is a signing key as GitHub holds it, with its public half in a
// key file in GitHub's public_keys format.
type githubKey struct {
	id   string
	priv *ecdsa.PrivateKey
}

func newGitHubKeys(t *testing.T, ids ...string) (string, []githubKey) {
	t.Helper()
	var keys []githubKey
	var file struct {
		PublicKeys []map[string]any `json:"public_keys"`
	}
	for _, id := range ids {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		file.PublicKeys = append(file.PublicKeys, map[string]any{"key_identifier": id, "is_current": true,
			"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
		keys = append(keys, githubKey{id, priv})
	}
	path := filepath.Join(t.TempDir(), "github-keys.json")
	b, _ := json.Marshal(file)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, keys
}

// report posts body to the secret scanning endpoint signed by k (or with
// the signature given).
func (e *env) report(k githubKey, body []byte, signature string) *response {
	e.t.Helper()
	if signature == "" {
		sum := sha256.Sum256(body)
		sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
		if err != nil {
			e.t.Fatal(err)
		}
		signature = base64.StdEncoding.EncodeToString(sig)
	}
	return e.send(request{method: "POST", path: "/api/secret_scanning/github", body: body,
		header: http.Header{"Github-Public-Key-Identifier": {k.id}, "Github-Public-Key-Signature": {signature}}})
}

// A token GitHub finds published is revoked at once (or, by its account's
// leak policy, only reported), with a token.leaked event carrying where it
// was found; GitHub hears which values were tokend's. A report that is not
// signed by GitHub's key changes nothing; one sent again changes nothing
// more.
func TestSecretScanningRevokesLeakedTokens(t *testing.T) {
	keyFile, keys := newGitHubKeys(t, "github-current", "github-old")
	rc := newReceiver(t, 0, nil)
	smtp := testutil.StartSMTP(t, testutil.SMTPOptions{})
	relay, _ := mail.ParseRelay("smtp://"+smtp.Addr, mail.RelayOptions{})
	e := newEnv(t, withConfig(func(c *app.Config) { c.SecretScanningKeys = keyFile }), withRelay(relay),
		monitorFor(rc, 1000, &deliveries{counts: map[string]int{}}))
	if _, err := e.svc.Users().Create(t.Context(), tokend.NewUser{AccountID: e.acme, Email: "ann@example.com", Name: "Ann", Role: tokend.Admin, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	leaked := e.createToken(e.admin, "ci", perm("account", e.acme, 10))
	e.get("/api/whoami", leaked.Token).want(200) // in the cache: the revocation must reach it
	e.patch(e.path("/api/accounts/%d/token_settings", e.other), e.otherAdmin, map[string]any{"leak_policy": "notify"}).want(200)
	notified := e.createToken(e.otherAdmin, "deploy", perm("account", e.other, 10))
	madeUp := "tk_live_" + strings.Repeat("A", 36)
	matches := []map[string]string{
		{"token": leaked.Token, "type": "tokend_api_token", "url": "https://github.com/acme/app/blob/main/.env", "source": "content"},
		{"token": madeUp, "type": "tokend_api_token", "url": "https://github.com/acme/app/blob/main/README.md", "source": "content"},
		{"token": notified.Token, "type": "tokend_api_token", "url": "https://gist.github.com/someone/1", "source": "gist"},
	}
	body, _ := json.Marshal(matches)

	// Not GitHub's: refused, and nothing happens.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e.report(githubKey{"github-current", other}, body, "").want(401)
	e.report(githubKey{"unknown", keys[0].priv}, body, "").want(401)
	tampered := bytes.Replace(body, []byte("blob/main/.env"), []byte("blob/main/.txt"), 1)
	sum := sha256.Sum256(body)
	sig, _ := ecdsa.SignASN1(rand.Reader, keys[0].priv, sum[:])
	e.report(keys[0], tampered, base64.StdEncoding.EncodeToString(sig)).want(401)
	e.get("/api/whoami", leaked.Token).want(200)

	var feedback []struct {
		TokenRaw  string `json:"token_raw"`
		TokenType string `json:"token_type"`
		Label     string `json:"label"`
	}
	for round := range 2 { // sent again, as GitHub does after an error
		e.report(keys[round], body, "").want(200).decode(&feedback) // the old key verifies too
		if len(feedback) != 3 || feedback[0].Label != "true_positive" || feedback[1].Label != "false_positive" || feedback[2].Label != "true_positive" ||
			feedback[0].TokenRaw != leaked.Token || feedback[0].TokenType != "tokend_api_token" {
			t.Fatalf("round %d: feedback %+v", round, feedback)
		}
	}
	if r := e.get("/api/whoami", leaked.Token); r.Status != 401 {
		t.Errorf("the leaked token still works: %d", r.Status)
	}
	e.get("/api/whoami", notified.Token).want(200) // its account only wants to hear of it

	var audit auditPage
	e.get("/api/audit_log?limit=5", e.admin).want(200).decode(&audit)
	leaks := 0
	for _, ev := range audit.Data {
		if ev.Action == "token.leaked" {
			leaks++
			if *ev.TargetID != leaked.ID || ev.Details["url"] != matches[0]["url"] || ev.Details["revoked"] != true || ev.Details["policy"] != "revoke" {
				t.Errorf("the leak's audit event: %+v", ev)
			}
		}
	}
	if leaks != 1 {
		t.Errorf("%d token.leaked events in the account, want 1 (the report was sent twice)", leaks)
	}
	e.get("/api/audit_log?limit=1", e.otherAdmin).want(200).decode(&audit)
	if ev := audit.Data[0]; ev.Action != "token.leaked" || ev.Details["revoked"] != false || ev.Details["policy"] != "notify" {
		t.Errorf("the notified leak's audit event: %+v", ev)
	}
	if got := rc.await(t, "token.leaked"); got.TokenID == 0 || !strings.Contains(got.Message, "was found published at https://") || strings.Contains(got.Message, leaked.Token) {
		t.Errorf("the webhook's event: %+v", got)
	}
	if strings.Contains(e.logs.String(), madeUp) {
		t.Error("a reported value appears in the logs")
	}
	m := smtp.WaitMails(t, 1, 10*time.Second)[0]
	if m.To[0] != "ann@example.com" || !strings.Contains(string(m.Data), `Subject: API token "ci" was found published`) ||
		!strings.Contains(string(m.Data), matches[0]["url"]) || strings.Contains(string(m.Data), leaked.Token) {
		t.Errorf("the email: to %v\n%s", m.To, m.Data)
	}
	time.Sleep(100 * time.Millisecond) // time for a second email, which must not come
	if n := len(smtp.Mails()); n != 1 {
		t.Errorf("%d emails to the account's one user, want 1 (the other account has no users; the report came twice)", n)
	}
}

// Without a key file the endpoint answers 503, so that GitHub tries again
// once the operator has set it up.
func TestSecretScanningNeedsTheKeyFile(t *testing.T) {
	e := newEnv(t)
	r := e.send(request{method: "POST", path: "/api/secret_scanning/github", body: "[]"}).want(503)
	if !strings.Contains(string(r.Body), "--secret-scanning-keys") || r.Header.Get("Retry-After") != "60" {
		t.Errorf("without a key file: %s %v", r.Body, r.Header)
	}
}
