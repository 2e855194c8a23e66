package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/cli"
	"github.com/tokend/tokend/internal/testutil"
)

// runServe starts cli.Run("serve") in-process and returns the URL it listens on.
func runServe(t *testing.T, env map[string]string, args ...string) (url string, stdout *testutil.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"tokend", "serve"}, args...), func(k string) string { return env[k] }, nil, stdout, stderr)
	}()
	listening := regexp.MustCompile(`"msg":"listening".*"url":"([^"]+)"`)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before listening: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within 20 s\n%s", stderr.String())
		}
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return within 20 s of cancellation")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return url, stdout, stop
}

func TestServeOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	url, stdout, stop := runServe(t, map[string]string{
		"TOKEND_DB":       filepath.Join(dir, "tokend.db"),
		"TOKEND_TLS_CERT": certFile,
		"TOKEND_TLS_KEY":  keyFile,
	}, "--addr", "127.0.0.1:0")
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url = %q, want https on loopback", url)
	}
	token := regexp.MustCompile(`tk_live_\w{36}`).FindString(stdout.String())
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", url+"/api/api_tokens", nil)
	req.Header.Set("Api-Token", token)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET over TLS: %d", res.StatusCode)
	}
	if got := res.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HTTPS response without HSTS: %q", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	dir := t.TempDir()
	flagDB, envDB := filepath.Join(dir, "flag.db"), filepath.Join(dir, "env.db")
	url, _, stop := runServe(t, map[string]string{"TOKEND_DB": envDB, "TOKEND_ADDR": "127.0.0.1:1"}, "--db", flagDB, "--addr", "127.0.0.1:0")
	if strings.HasSuffix(url, ":1") {
		t.Errorf("listening on %s: TOKEND_ADDR won over --addr", url)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(flagDB); err != nil {
		t.Errorf("--db was not used: %v", err)
	}
	if _, err := os.Stat(envDB); err == nil {
		t.Error("TOKEND_DB was used although --db was given")
	}
}

func TestAccountCreatePrintsTokenOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), []string{"tokend", "account", "create", "--name", "Acme", "--db", db}, func(string) string { return "" }, nil, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`tk_live_\w{36}`).FindAllString(out.String(), -1)); n != 1 || !strings.Contains(out.String(), "not show it again") {
		t.Errorf("output shows %d token values: %q", n, out.String())
	}
	var list bytes.Buffer
	if err := cli.Run(context.Background(), []string{"tokend", "account", "list", "--json", "--db", db}, func(string) string { return "" }, nil, &list, &errb); err != nil {
		t.Fatal(err)
	}
	var accounts []struct{ Name, Plan string }
	if err := json.Unmarshal(list.Bytes(), &accounts); err != nil || len(accounts) != 1 || accounts[0].Plan != "free" {
		t.Errorf("accounts = %+v, %v", accounts, err)
	}
}

func TestExitCodes(t *testing.T) {
	if cli.ExitCode(nil) != 0 || cli.ExitCode(&cli.UsageError{Msg: "x"}) != 2 || cli.ExitCode(os.ErrNotExist) != 1 {
		t.Fatal("exit codes are not 0 / 2 / 1")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokend test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// A refused start creates no database and prints no token.
func TestServeRefusesPlainHTTPOnANetworkAddress(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tokend.db")
	var stdout, stderr testutil.Buffer
	err := cli.Run(context.Background(), []string{"tokend", "serve", "--addr", "0.0.0.0:0", "--db", db},
		func(string) string { return "" }, nil, &stdout, &stderr)
	if cli.ExitCode(err) != 2 || !strings.Contains(stderr.String(), "--insecure-http") || !strings.Contains(stderr.String(), "--trusted-proxies") {
		t.Fatalf("exit %d, stderr %q", cli.ExitCode(err), stderr.String())
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a refused start created the database")
	}
	if stdout.String() != "" {
		t.Errorf("a refused start printed %q", stdout.String())
	}
}

// Positional arguments come before, after or between the flags, in their
// order; one that starts with "-" only after "--".
func TestPositionalArgumentsAmongFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	if err := cli.Run(context.Background(), []string{"tokend", "account", "create", "--name", "Acme", "--db", db},
		func(string) string { return "" }, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"both first", []string{"5", "6", "--json", "--db", db}, 1, "webhook resend: no webhook 5 in account 1 of " + db},
		{"both last", []string{"--db", db, "--json", "5", "6"}, 1, "webhook resend: no webhook 5 in account 1 of " + db},
		{"around the flags", []string{"5", "--db", db, "6", "--json"}, 1, "webhook resend: no webhook 5 in account 1 of " + db},
		{"between the flags", []string{"--json", "5", "--db", db, "6"}, 1, "webhook resend: no webhook 5 in account 1 of " + db},
		{"after --", []string{"--db", db, "--", "5", "-6"}, 2, `webhook resend: "-6" is not a delivery ID`},
		{"one short", []string{"5", "--db", db}, 2, `webhook resend: missing DELIVERY_ID (run "tokend help webhook resend")`},
		{"none", []string{"--db", db}, 2, `webhook resend: missing webhook ID (run "tokend help webhook resend")`},
		{"one too many", []string{"5", "6", "--db", db, "7"}, 2, `webhook resend: unexpected argument "7"`},
		{"a flag it lacks, after them", []string{"5", "6", "--force"}, 2, "webhook resend: flag provided but not defined: -force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := cli.Run(context.Background(), append([]string{"tokend", "webhook", "resend"}, tt.args...), func(string) string { return "" }, nil, &stdout, &stderr)
			if code := cli.ExitCode(err); code != tt.code || err == nil || !strings.HasPrefix(err.Error(), tt.message) {
				t.Errorf("exit %d, %v; want exit %d, %q", code, err, tt.code, tt.message)
			}
		})
	}
}

// The commands that take an ID say the same things of it, each in its own
// words: a missing one, one that is not an ID, and an ID that names nothing.
func TestIDArguments(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	if err := cli.Run(context.Background(), []string{"tokend", "account", "create", "--name", "Acme", "--db", db},
		func(string) string { return "" }, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"token revoke without an ID", []string{"token", "revoke"}, 2, `token revoke: missing token ID (run "tokend help token revoke")`},
		{"token revoke of a word", []string{"token", "revoke", "abc"}, 2, `token revoke: "abc" is not a token ID`},
		{"token revoke of no token", []string{"token", "revoke", "99"}, 1, "token revoke: no token 99 in " + db},
		{"account set-plan of zero", []string{"account", "set-plan", "0", "--plan", "pro"}, 2, `account set-plan: "0" is not an account ID`},
		{"account set-plan of no account", []string{"account", "set-plan", "99", "--plan", "pro"}, 1, "account set-plan: no account 99"},
		{"user delete of a negative number, after the flags", []string{"user", "delete", "--db", db, "--", "-3"}, 2, `user delete: "-3" is not a user ID`},
		{"user delete of no user", []string{"user", "delete", "7"}, 1, "user delete: no user 7 in " + db},
		{"user set-password without an ID", []string{"user", "set-password", "--password-stdin"}, 2, `user set-password: missing user ID (run "tokend help user set-password")`},
		{"domain trust of a word", []string{"domain", "trust", "x"}, 2, `domain trust: "x" is not a sending domain ID`},
		{"domain trust of no domain", []string{"domain", "trust", "5"}, 1, "domain trust: no sending domain 5 in " + db},
		{"token create for no account", []string{"token", "create", "--account", "99", "--name", "x"}, 1, "token create: no account 99 in " + db},
		{"user setup-link for no account", []string{"user", "setup-link", "--account", "99"}, 1, "user setup-link: no account 99 in " + db},
		{"suppression remove without an ID", []string{"suppression", "remove"}, 2, `suppression remove: missing suppression ID (run "tokend help suppression remove")`},
		{"suppression remove of no suppression", []string{"suppression", "remove", "nope"}, 1, `suppression remove: no suppression "nope" in account 1 of ` + db},
		{"suppression add for no domain", []string{"suppression", "add", "ann@example.org", "--domain", "4"}, 1, "suppression add: no sending domain 4 in account 1 of " + db},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"tokend"}, tt.args...)
			if !slices.Contains(tt.args, "--db") {
				args = append(args, "--db", db)
			}
			err := cli.Run(context.Background(), args, func(string) string { return "" }, nil, &stdout, &stderr)
			if code := cli.ExitCode(err); code != tt.code || err.Error() != tt.message {
				t.Errorf("exit %d, %v; want exit %d, %q", code, err, tt.code, tt.message)
			}
			if stdout.Len() > 0 {
				t.Errorf("printed %q", stdout.String())
			}
		})
	}
}
