package tokend

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"time"
)

// DomainKey is the DKIM key of a sending domain, made when the domain is
// created. The private key is sealed by the Keyring: the store never holds it
// in clear. Domain is kept with the key so that mail accepted before the
// domain was deleted can still be signed.
type DomainKey struct {
	DomainID         int64
	AccountID        int64
	Domain           string
	Selector         string
	PublicKey        []byte // DER SubjectPublicKeyInfo
	SealedPrivateKey []byte
	CreatedAt        time.Time
}

// dkimKeyBits is the size of generated DKIM keys: RSA 2048, which every
// receiver verifies.
const dkimKeyBits = 2048

func dkimPurpose(domain string) string { return "dkim private key of " + domain }

// newDomainKey generates a DKIM key for domain and seals its private half.
func newDomainKey(k *Keyring, domain string, bits int, now time.Time) (*DomainKey, error) {
	if bits == 0 {
		bits = dkimKeyBits
	}
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generate dkim key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode dkim key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode dkim key: %w", err)
	}
	// A selector of its own per key: a domain deleted and made again gets a
	// new key while mail signed with the old one may still be queued.
	var suffix [2]byte
	rand.Read(suffix[:])
	return &DomainKey{
		Domain:           domain,
		Selector:         fmt.Sprintf("tokend%s%x", now.Format("200601"), suffix),
		PublicKey:        pub,
		SealedPrivateKey: k.Seal(dkimPurpose(domain), der),
		CreatedAt:        now,
	}, nil
}

// signer opens a domain key's private half.
func (k *Keyring) signer(dk *DomainKey) (crypto.Signer, error) {
	der, err := k.Open(dkimPurpose(dk.Domain), dk.SealedPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("dkim key of %s: %w", dk.Domain, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("dkim key of %s: %w", dk.Domain, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dkim key of %s: %T cannot sign", dk.Domain, key)
	}
	return s, nil
}

// DKIMRecord is the TXT value that publishes the key.
func (dk *DomainKey) DKIMRecord() string {
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(dk.PublicKey)
}

// EnsureDomainKeys makes a DKIM key for every sending domain that has none
// (domains made before tokend sent email) and returns how many it made.
func (s *Service) EnsureDomainKeys(ctx context.Context) (int, error) {
	var missing []Resource
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		missing, err = tx.DomainsWithoutKey(ctx)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range missing {
		key, err := newDomainKey(s.opts.Keyring, d.Name, s.opts.DKIMKeyBits, s.now())
		if err != nil {
			return n, err
		}
		key.DomainID, key.AccountID = d.ID, d.AccountID
		made := false
		err = s.store.Write(ctx, func(tx Tx) error {
			made = false
			if _, err := tx.DomainKey(ctx, d.ID); err == nil {
				return nil // another process made it meanwhile
			} else if ErrorCode(err) != ENOTFOUND {
				return err
			}
			made = true
			return tx.CreateDomainKey(ctx, key)
		})
		if err != nil {
			return n, err
		}
		if made {
			n++
		}
	}
	return n, nil
}
