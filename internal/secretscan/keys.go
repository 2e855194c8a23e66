package secretscan

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Errors of Keys.Verify.
var (
	// ErrUnknownKey: the key identifier is not in the key file (or is empty).
	ErrUnknownKey = errors.New("secretscan: unknown key identifier")
	// ErrBadSignature: the signature is not base64 of an ASN.1 DER ECDSA
	// signature, or it does not verify with the identified key.
	ErrBadSignature = errors.New("secretscan: bad signature")
)

// ReloadInterval is how often, at most, Keys looks at its file for a change.
const ReloadInterval = time.Second

// MaxKeyFileSize bounds the key file; a larger file is invalid.
const MaxKeyFileSize = 1 << 20

// maxSignatureLength bounds the base64 signature before it is decoded. An
// ASN.1 DER ECDSA P-256 signature is at most 72 bytes, 96 in base64.
const maxSignatureLength = 256

// KeysOptions tunes LoadKeys. The zero value is ready to use.
type KeysOptions struct {
	// Now is the clock that paces the checks for a changed file.
	// Default: time.Now.
	Now func() time.Time

	// OnReloadError, if set, is called when the key file has changed (or
	// could not be looked at) and is not usable: unreadable, removed or
	// invalid. The last good keys stay in use. It is called once per
	// change of the file's state, not on every check, from the goroutine
	// of the Verify call that noticed, without any lock held (it may call
	// Err). Meant for logging; the error names the file and what is wrong.
	OnReloadError func(error)
}

// Keys are the public keys that verify GitHub's reports, read from a file
// in the format of GitHub's meta endpoint:
//
//	{"public_keys": [{"key_identifier": "...", "key": "-----BEGIN PUBLIC KEY-----\n...", "is_current": true}]}
//
// Every key is a PEM "PUBLIC KEY" (PKIX) block holding an ECDSA P-256 key.
// All keys verify, current or not (GitHub rotates keys and still signs
// with the old ones for a while); unknown fields are ignored.
//
// The file is re-read when it changes: on Verify, at most once per
// ReloadInterval, its modification time and size are compared with those
// of the last read. A changed file that is valid replaces all keys; one
// that is not keeps the last good keys, and the error is reported through
// KeysOptions.OnReloadError and returned by Err until a valid file is read.
// Replace the file atomically (write another, rename it over) so that a
// half-written file is never read.
//
// Keys is safe for concurrent use.
type Keys struct {
	path          string
	now           func() time.Time
	onReloadError func(error)

	mu      sync.Mutex
	keys    map[string]*ecdsa.PublicKey
	any     *ecdsa.PublicKey // one of keys, to do the work of a verification for an unknown id
	seen    fileState        // of the last read or attempt
	checked time.Time        // by now, of the last look at the file
	err     error            // of the last attempt, if it failed
}

// fileState is what tells a changed file, or the failure to look at one.
type fileState struct {
	modTime int64 // Unix nanoseconds
	size    int64
	err     string
}

// LoadKeys reads the key file at path. A file that cannot be read or is
// invalid is an error naming the file and what is wrong with it: not JSON,
// no keys, an empty or duplicate key identifier, a key that is not an
// ECDSA P-256 PKIX public key.
func LoadKeys(path string, opts KeysOptions) (*Keys, error) {
	k := &Keys{path: path, now: opts.Now, onReloadError: opts.OnReloadError}
	if k.now == nil {
		k.now = time.Now
	}
	state, keys, err := k.read()
	if err != nil {
		return nil, err
	}
	k.set(keys)
	k.seen, k.checked = state, k.now()
	return k, nil
}

// Err returns the error of the last attempt to reload the key file, or
// nil if the keys in use come from the file as it is now.
func (k *Keys) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Verify checks that signatureB64, the base64 (standard encoding, padded)
// of an ASN.1 DER ECDSA signature, is a signature of SHA-256(body) by the
// key identified by keyID. It returns nil, ErrUnknownKey or
// ErrBadSignature (ErrUnknownKey for an unknown id whatever the
// signature), and never panics.
//
// Key identifiers are public, so which of the two errors is returned is no
// secret; still, every call hashes the body and runs one verification, so
// that an unknown id costs as much as a wrong signature.
func (k *Keys) Verify(keyID string, signatureB64 string, body []byte) error {
	pub, known := k.lookup(keyID)
	var sig []byte
	decoded := false
	if len(signatureB64) <= maxSignatureLength {
		var err error
		sig, err = base64.StdEncoding.DecodeString(signatureB64)
		decoded = err == nil
	}
	digest := sha256.Sum256(body)
	valid := ecdsa.VerifyASN1(pub, digest[:], sig)
	switch {
	case !known:
		return ErrUnknownKey
	case !decoded || !valid:
		return ErrBadSignature
	}
	return nil
}

// lookup returns the key of id, reloading the file first if it is time to
// look at it. For an unknown id it returns another key and false.
func (k *Keys) lookup(id string) (*ecdsa.PublicKey, bool) {
	k.mu.Lock()
	reloadErr := k.maybeReload()
	pub, known := k.keys[id]
	if !known {
		pub = k.any
	}
	k.mu.Unlock()
	if reloadErr != nil && k.onReloadError != nil {
		k.onReloadError(reloadErr)
	}
	return pub, known
}

// maybeReload re-reads the file if ReloadInterval has passed since the last
// look and the file changed. It returns a new error to report, if any.
// k.mu is held.
func (k *Keys) maybeReload() error {
	now := k.now()
	if d := now.Sub(k.checked); d >= 0 && d < ReloadInterval {
		return nil
	}
	k.checked = now // also when the clock went back
	fi, err := os.Stat(k.path)
	if err != nil {
		err = k.osErr(err)
		return k.failed(fileState{err: err.Error()}, err)
	}
	if cur := (fileState{modTime: fi.ModTime().UnixNano(), size: fi.Size()}); cur == k.seen {
		return nil
	}
	// The state recorded is the one seen before reading, so that a write
	// during the read shows up as a change at the next look.
	state, keys, err := k.read()
	if err != nil {
		return k.failed(state, err)
	}
	k.set(keys)
	k.seen, k.err = state, nil
	return nil
}

// failed records a failed reload; it returns err if the file's state is
// new, nil if this failure was already reported. k.mu is held.
func (k *Keys) failed(state fileState, err error) error {
	if state == k.seen && k.err != nil {
		return nil
	}
	k.seen, k.err = state, err
	return err
}

func (k *Keys) set(keys map[string]*ecdsa.PublicKey) {
	k.keys = keys
	for _, pub := range keys {
		k.any = pub
		break
	}
}

func (k *Keys) fileErr(format string, args ...any) error {
	return fmt.Errorf("secretscan: key file %s: %s", k.path, fmt.Sprintf(format, args...))
}

// osErr is fileErr for an error of the os package, without the path
// twice; it wraps err (errors.Is(err, fs.ErrNotExist) holds for a missing file).
func (k *Keys) osErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("secretscan: key file %s: %s: %w", k.path, pe.Op, pe.Err)
	}
	return fmt.Errorf("secretscan: key file %s: %w", k.path, err)
}

// keyFile is the format of GitHub's meta endpoint for these keys.
type keyFile struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// read reads and parses the file. The state it returns is the file's as
// seen before reading, even on error when the file could be looked at.
func (k *Keys) read() (fileState, map[string]*ecdsa.PublicKey, error) {
	f, err := os.Open(k.path)
	if err != nil {
		err = k.osErr(err)
		return fileState{err: err.Error()}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		err = k.osErr(err)
		return fileState{err: err.Error()}, nil, err
	}
	state := fileState{modTime: fi.ModTime().UnixNano(), size: fi.Size()}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return state, nil, k.osErr(err)
	}
	if len(data) > MaxKeyFileSize {
		return state, nil, k.fileErr("larger than %d bytes", MaxKeyFileSize)
	}
	keys, err := parseKeyFile(data)
	if err != nil {
		return state, nil, k.fileErr("%v", err)
	}
	return state, keys, nil
}

// keyFileTypes says what the fields of a keyFile hold, for errors.
var keyFileTypes = map[string]string{
	"public_keys":                "an array of objects",
	"public_keys.key_identifier": "a string",
	"public_keys.key":            "a string",
	"public_keys.is_current":     "a boolean",
}

func parseKeyFile(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON (near byte %d)", se.Offset)
		}
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return nil, fmt.Errorf("%q has a JSON %s, want %s", te.Field, te.Value, keyFileTypes[te.Field])
		}
		return nil, errors.New(`not a JSON object {"public_keys": [{"key_identifier": ..., "key": ...}]}`)
	}
	if len(kf.PublicKeys) == 0 {
		return nil, errors.New(`no keys (want {"public_keys": [{"key_identifier": ..., "key": ...}]})`)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(kf.PublicKeys))
	for i, e := range kf.PublicKeys {
		if e.KeyIdentifier == "" {
			return nil, fmt.Errorf("key %d: empty key_identifier", i)
		}
		if _, dup := keys[e.KeyIdentifier]; dup {
			return nil, fmt.Errorf("key %d: duplicate key_identifier %q", i, e.KeyIdentifier)
		}
		pub, err := parsePublicKey(e.Key)
		if err != nil {
			return nil, fmt.Errorf("key %d (%q): %v", i, e.KeyIdentifier, err)
		}
		keys[e.KeyIdentifier] = pub
	}
	return keys, nil
}

// parsePublicKey parses one PEM "PUBLIC KEY" block holding an ECDSA P-256
// key, with nothing but white space around it.
func parsePublicKey(s string) (*ecdsa.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not a PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("data after the PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %v", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a public key of type %T, want an ECDSA P-256 public key", pub)
	}
	if name := ec.Curve.Params().Name; name != "P-256" {
		return nil, fmt.Errorf("an ECDSA key on %s, want P-256", name)
	}
	return ec, nil
}
