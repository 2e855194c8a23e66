package tokend

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretsKeySize is the size of a Keyring's key: AES-256.
const SecretsKeySize = 32

// Keyring seals the secrets tokend must be able to read back (the DKIM
// private keys of sending domains) before they reach the store, so that a
// copy of the database alone reveals none of them. It uses AES-256-GCM with
// a random nonce per seal and binds each sealed value to what it is for, so
// that one sealed value cannot be passed off as another.
type Keyring struct {
	aead cipher.AEAD
}

// NewKeyring returns a keyring over a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != SecretsKeySize {
		return nil, fmt.Errorf("secrets key: %d bytes, want %d", len(key), SecretsKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return &Keyring{aead: aead}, nil
}

// NewSecretsKey returns a fresh random key, encoded as a keyring file holds it.
func NewSecretsKey() string {
	key := make([]byte, SecretsKeySize)
	rand.Read(key) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(key)
}

// ParseSecretsKey decodes a key as NewSecretsKey encodes it (surrounding
// space ignored).
func ParseSecretsKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != SecretsKeySize {
		return nil, errors.New("not a base64-encoded 32-byte key")
	}
	return key, nil
}

// Seal encrypts plaintext for purpose.
func (k *Keyring) Seal(purpose string, plaintext []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	rand.Read(nonce) // never fails (crypto/rand)
	return k.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// ErrWrongSecretsKey means a sealed value does not open with this keyring: it
// was sealed with another key, for another purpose, or altered.
var ErrWrongSecretsKey = errors.New("sealed secret does not open with this secrets key")

// Open decrypts what Seal sealed for purpose.
func (k *Keyring) Open(purpose string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrWrongSecretsKey
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, ErrWrongSecretsKey
	}
	return out, nil
}

// keyCheckPurpose names the value a store keeps to tell at start whether the
// configured secrets key is the one its secrets were sealed with.
const keyCheckPurpose = "tokend secrets key check"

// KeyCheck returns a sealed value that only this keyring opens.
func (k *Keyring) KeyCheck() []byte { return k.Seal(keyCheckPurpose, []byte("ok")) }

// Matches reports whether check was made by KeyCheck of a keyring with the same key.
func (k *Keyring) Matches(check []byte) bool {
	_, err := k.Open(keyCheckPurpose, check)
	return err == nil
}

// ErrSecretsKeyMismatch means the store's secrets were sealed with another key.
var ErrSecretsKeyMismatch = errors.New("the secrets key does not open this database's secrets: it was sealed with another key")

const keyCheckSetting = "secrets_key_check"

// CheckSecretsKey makes sure the service's keyring is the one the store's
// secrets were sealed with: the first time, it records a check value sealed
// with it; after that, a keyring that cannot open the check is
// ErrSecretsKeyMismatch. It reports whether the check was new.
func (s *Service) CheckSecretsKey(ctx context.Context) (created bool, err error) {
	err = s.store.Write(ctx, func(tx Tx) error {
		check, err := tx.Setting(ctx, keyCheckSetting)
		switch {
		case ErrorCode(err) == ENOTFOUND:
			created = true
			return tx.PutSetting(ctx, keyCheckSetting, s.opts.Keyring.KeyCheck())
		case err != nil:
			return err
		case !s.opts.Keyring.Matches(check):
			return ErrSecretsKeyMismatch
		}
		return nil
	})
	return created, err
}

// HasSecrets reports whether store holds secrets sealed with some key.
func HasSecrets(ctx context.Context, store Store) (bool, error) {
	var has bool
	err := store.Read(ctx, func(tx Tx) error {
		_, err := tx.Setting(ctx, keyCheckSetting)
		if ErrorCode(err) == ENOTFOUND {
			return nil
		}
		has = err == nil
		return err
	})
	return has, err
}
