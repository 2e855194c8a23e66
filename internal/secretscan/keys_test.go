package secretscan_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/secretscan"
)

func TestLoadKeysInvalid(t *testing.T) {
	a := newKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := ecEntry(t, "a", a, true)
	for _, c := range []struct {
		name string
		data []byte
		want string // in the error, besides the file's path
	}{
		{"empty file", nil, "not valid JSON"},
		{"not JSON", []byte("public_keys: a"), "not valid JSON"},
		{"truncated JSON", keyFile(t, good)[:40], "not valid JSON"},
		{"an array", []byte(`[{"key_identifier": "a"}]`), "not a JSON object"},
		{"public_keys not an array", []byte(`{"public_keys": {"a": "b"}}`), `"public_keys" has a JSON object, want an array of objects`},
		{"a key not a string", []byte(`{"public_keys": [{"key_identifier": "a", "key": 1}]}`), `"public_keys.key" has a JSON number, want a string`},
		{"a string", []byte(`"public_keys"`), "not a JSON object"},
		{"no public_keys", []byte(`{"keys": []}`), "no keys"},
		{"null", []byte(`null`), "no keys"},
		{"no keys", keyFile(t), "no keys"},
		{"empty id", keyFile(t, good, entry{ID: "", Key: good.Key}), "key 1: empty key_identifier"},
		{"duplicate ids", keyFile(t, good, ecEntry(t, "a", newKey(t), false)), `key 1: duplicate key_identifier "a"`},
		{"RSA key", keyFile(t, good, entry{ID: "rsa", Key: pemOf(t, &rsaKey.PublicKey)}), `key 1 ("rsa"): a public key of type *rsa.PublicKey, want an ECDSA P-256 public key`},
		{"P-384 key", keyFile(t, entry{ID: "p384", Key: pemOf(t, &p384.PublicKey)}), `key 0 ("p384"): an ECDSA key on P-384, want P-256`},
		{"Ed25519 key", keyFile(t, entry{ID: "ed", Key: pemOf(t, edPub)}), "ed25519.PublicKey, want an ECDSA P-256"},
		{"empty key", keyFile(t, entry{ID: "a"}), "not a PEM block"},
		{"not PEM", keyFile(t, entry{ID: "a", Key: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}), "not a PEM block"},
		{"another PEM block", keyFile(t, entry{ID: "a", Key: strings.Replace(good.Key, "PUBLIC KEY", "CERTIFICATE", 2)}), `PEM block is "CERTIFICATE"`},
		{"two PEM blocks", keyFile(t, entry{ID: "a", Key: good.Key + good.Key}), "data after the PEM block"},
		{"not PKIX", keyFile(t, entry{ID: "a", Key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}), "not a PKIX public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := tempFile(t, c.data)
			k, err := secretscan.LoadKeys(path, secretscan.KeysOptions{})
			if err == nil {
				t.Fatalf("loaded %v", k)
			}
			if !strings.Contains(err.Error(), "key file "+path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want the path and %q", err, c.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.json")
		_, err := secretscan.LoadKeys(path, secretscan.KeysOptions{})
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "key file "+path+": open: no such file") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		data := keyFile(t, good)
		data = append(data, strings.Repeat(" ", secretscan.MaxKeyFileSize)...)
		_, err := secretscan.LoadKeys(tempFile(t, data), secretscan.KeysOptions{})
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestVerify(t *testing.T) {
	a, b, old := newKey(t), newKey(t), newKey(t)
	path := tempFile(t, keyFile(t, ecEntry(t, "a", a, true), ecEntry(t, "b", b, true), ecEntry(t, "old", old, false)))
	keys, err := secretscan.LoadKeys(path, secretscan.KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"token":"tokend_abc","type":"tokend_api_token","url":"https://github.com/o/r/blob/x/f","source":"content"}]`)
	sigA := sign(t, a, body)
	rawA, _ := base64.StdEncoding.DecodeString(sigA)
	tampered := append([]byte(nil), body...)
	tampered[12] ^= 1
	for _, c := range []struct {
		name  string
		keyID string
		sig   string
		body  []byte
		want  error
	}{
		{"valid", "a", sigA, body, nil},
		{"another valid key", "b", sign(t, b, body), body, nil},
		{"a key that is not current", "old", sign(t, old, body), body, nil},
		{"empty body", "a", sign(t, a, nil), nil, nil},
		{"unknown key id", "c", sigA, body, secretscan.ErrUnknownKey},
		{"empty key id", "", sigA, body, secretscan.ErrUnknownKey},
		{"key id of another case", "A", sigA, body, secretscan.ErrUnknownKey},
		{"signed by another key", "a", sign(t, b, body), body, secretscan.ErrBadSignature},
		{"tampered body", "a", sigA, tampered, secretscan.ErrBadSignature},
		{"body with a byte more", "a", sigA, append(body[:len(body):len(body)], '\n'), secretscan.ErrBadSignature},
		{"empty signature", "a", "", body, secretscan.ErrBadSignature},
		{"not base64", "a", "!!!" + sigA[3:], body, secretscan.ErrBadSignature},
		{"base64 without padding", "a", base64.RawStdEncoding.EncodeToString([]byte("xy")), body, secretscan.ErrBadSignature},
		{"URL base64", "a", base64.URLEncoding.EncodeToString(rawA) + "-_", body, secretscan.ErrBadSignature},
		{"base64 of not DER", "a", base64.StdEncoding.EncodeToString([]byte("not a signature")), body, secretscan.ErrBadSignature},
		{"DER with a byte more", "a", base64.StdEncoding.EncodeToString(append(rawA, 0)), body, secretscan.ErrBadSignature},
		{"truncated DER", "a", base64.StdEncoding.EncodeToString(rawA[:len(rawA)-1]), body, secretscan.ErrBadSignature},
		{"huge signature", "a", strings.Repeat("A", 1<<20), body, secretscan.ErrBadSignature},
		{"unknown key id and a bad signature", "c", "!", body, secretscan.ErrUnknownKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := keys.Verify(c.keyID, c.sig, c.body); err != c.want {
				t.Fatalf("%v, want %v", err, c.want)
			}
		})
	}
}

// reloadErrors records the errors given to KeysOptions.OnReloadError.
type reloadErrors struct {
	mu   sync.Mutex
	errs []error
}

func (r *reloadErrors) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *reloadErrors) get() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func TestKeysReload(t *testing.T) {
	a, b := newKey(t), newKey(t)
	body := []byte(`[]`)
	sigA, sigB := sign(t, a, body), sign(t, b, body)
	clk := newClock()
	mtime := time.Now().Add(-time.Hour)
	path := filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, path, keyFile(t, ecEntry(t, "a", a, true)), mtime)
	var reported reloadErrors
	keys, err := secretscan.LoadKeys(path, secretscan.KeysOptions{Now: clk.Now, OnReloadError: reported.add})
	if err != nil {
		t.Fatal(err)
	}

	// rewrite sets the file's content with the next modification time.
	rewrite := func(data []byte) {
		t.Helper()
		mtime = mtime.Add(time.Second)
		writeFile(t, path, data, mtime)
	}
	expect := func(step string, keyID, sig string, want error) {
		t.Helper()
		if err := keys.Verify(keyID, sig, body); err != want {
			t.Fatalf("%s: key %s: %v, want %v", step, keyID, err, want)
		}
	}
	expectErr := func(step, want string, reports int) {
		t.Helper()
		err := keys.Err()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("%s: Err() = %v, want %q", step, err, want)
		}
		if got := reported.get(); len(got) != reports {
			t.Fatalf("%s: %d errors reported (%v), want %d", step, len(got), got, reports)
		} else if want != "" && got[len(got)-1] != err {
			t.Fatalf("%s: reported %v, Err() %v", step, got[len(got)-1], err)
		}
	}

	expect("start", "a", sigA, nil)
	expect("start", "b", sigB, secretscan.ErrUnknownKey)

	rewrite(keyFile(t, ecEntry(t, "b", b, true)))
	clk.Advance(ReloadIntervalMinus)
	expect("rotated, within the interval", "a", sigA, nil)
	clk.Advance(time.Millisecond)
	expect("rotated", "a", sigA, secretscan.ErrUnknownKey)
	expect("rotated", "b", sigB, nil)
	expectErr("rotated", "", 0)

	// Same modification time, another size: a change too.
	writeFile(t, path, keyFile(t, ecEntry(t, "a", a, false), ecEntry(t, "b", b, true)), mtime)
	clk.Advance(secretscan.ReloadInterval)
	expect("same mtime, another size", "a", sigA, nil)
	expect("same mtime, another size", "b", sigB, nil)

	rewrite(keyFile(t, ecEntry(t, "b", b, true)))
	clk.Advance(secretscan.ReloadInterval)
	expect("rotated again", "a", sigA, secretscan.ErrUnknownKey)

	rewrite([]byte(`{"public_keys": [`))
	clk.Advance(secretscan.ReloadInterval)
	expect("invalid", "b", sigB, nil)
	expect("invalid", "a", sigA, secretscan.ErrUnknownKey)
	expectErr("invalid", "key file "+path+": not valid JSON", 1)
	clk.Advance(secretscan.ReloadInterval)
	expect("still invalid", "b", sigB, nil)
	expectErr("still invalid, reported once", "not valid JSON", 1)

	rewrite(keyFile(t))
	clk.Advance(secretscan.ReloadInterval)
	expect("no keys", "b", sigB, nil)
	expectErr("no keys", "no keys", 2)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clk.Advance(secretscan.ReloadInterval)
	expect("removed", "b", sigB, nil)
	expectErr("removed", "no such file", 3)
	clk.Advance(secretscan.ReloadInterval)
	expect("still removed", "b", sigB, nil)
	expectErr("still removed, reported once", "no such file", 3)

	rewrite(keyFile(t, ecEntry(t, "a", a, true)))
	clk.Advance(secretscan.ReloadInterval)
	expect("back", "a", sigA, nil)
	expect("back", "b", sigB, secretscan.ErrUnknownKey)
	expectErr("back", "", 3)

	// A clock that goes back looks at the file again.
	rewrite(keyFile(t, ecEntry(t, "b", b, true)))
	clk.Advance(-time.Hour)
	expect("clock went back", "b", sigB, nil)
}

// ReloadIntervalMinus is just short of the reload interval.
const ReloadIntervalMinus = secretscan.ReloadInterval - time.Millisecond

func TestKeysConcurrent(t *testing.T) {
	a, b := newKey(t), newKey(t)
	body := []byte(`[]`)
	sigA, sigB := sign(t, a, body), sign(t, b, body)
	clk := newClock()
	mtime := time.Now().Add(-time.Hour)
	path := filepath.Join(t.TempDir(), "keys.json")
	both := keyFile(t, ecEntry(t, "a", a, true), ecEntry(t, "b", b, false))
	writeFile(t, path, both, mtime)
	var keys *secretscan.Keys
	keys, err := secretscan.LoadKeys(path, secretscan.KeysOptions{Now: clk.Now, OnReloadError: func(error) { _ = keys.Err() }}) // may call back into Keys
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				// b is in every version of the file.
				if err := keys.Verify("b", sigB, body); err != nil {
					t.Error(err)
					return
				}
				_ = keys.Verify("a", sigA, body)
				clk.Advance(secretscan.ReloadInterval)
			}
		})
	}
	for i := range 20 {
		mtime = mtime.Add(time.Second)
		data := both
		switch i % 3 {
		case 1:
			data = keyFile(t, ecEntry(t, "b", b, true))
		case 2:
			data = []byte("{")
		}
		writeFile(t, path, data, mtime)
	}
	wg.Wait()
}

func FuzzVerify(f *testing.F) {
	a := newKey(f)
	keys, err := secretscan.LoadKeys(tempFile(f, keyFile(f, ecEntry(f, "a", a, true))), secretscan.KeysOptions{})
	if err != nil {
		f.Fatal(err)
	}
	body := []byte(`[{"token":"a"}]`)
	f.Add("a", sign(f, a, body), body)
	f.Add("a", sign(f, a, body), body[1:])
	f.Add("b", sign(f, a, body), body)
	f.Add("", "", []byte(nil))
	f.Add("a", "MEUCIQ==", body)
	f.Add("a", "MAYCAQACAQA=", body) // r = s = 0
	f.Fuzz(func(t *testing.T, keyID, sig string, body []byte) {
		switch err := keys.Verify(keyID, sig, body); {
		case err == nil:
			if keyID != "a" {
				t.Fatalf("verified with key %q", keyID)
			}
		case err != secretscan.ErrUnknownKey && err != secretscan.ErrBadSignature:
			t.Fatalf("error %v", err)
		case (err == secretscan.ErrUnknownKey) != (keyID != "a"):
			t.Fatalf("key %q: %v", keyID, err)
		}
	})
}
