package secretscan_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// newKey returns a new ECDSA P-256 key.
func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pemOf returns the PEM "PUBLIC KEY" block of a public key.
func pemOf(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// entry is one element of a key file's public_keys.
type entry struct {
	ID      string `json:"key_identifier"`
	Key     string `json:"key"`
	Current bool   `json:"is_current"`
}

// keyFile returns a key file's content.
func keyFile(t testing.TB, entries ...entry) []byte {
	t.Helper()
	b, err := json.Marshal(map[string][]entry{"public_keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ecEntry is the key file entry of id for key.
func ecEntry(t testing.TB, id string, key *ecdsa.PrivateKey, current bool) entry {
	return entry{ID: id, Key: pemOf(t, &key.PublicKey), Current: current}
}

// writeFile writes data at path and sets its modification time to mtime,
// so that a rewrite is seen as a change whatever the file system's
// timestamp granularity.
func writeFile(t testing.TB, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// tempFile writes data to a new file in a test directory and returns its path.
func tempFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret_scanning_keys.json")
	writeFile(t, path, data, time.Now())
	return path
}

// sign returns the base64 ASN.1 DER signature of SHA-256(body) by key.
func sign(t testing.TB, key *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
