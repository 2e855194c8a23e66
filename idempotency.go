package tokend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// IdempotencyWindow is how long a send's idempotency key holds: the same key
// with the same request within it answers as the first did, and sends
// nothing more.
const IdempotencyWindow = 24 * time.Hour

// MaxIdempotencyKey bounds an idempotency key's length.
const MaxIdempotencyKey = 255

// ReasonIdempotencyKeyReused is the reason of the EINVALID error of a key
// given again with a different request.
const ReasonIdempotencyKeyReused = "idempotency_key_reused"

// Idempotency is what makes a send safe to retry: the client's key, unique
// per account within IdempotencyWindow, and a fingerprint of the request it
// named (the route and the body, hashed), which a retry must match.
type Idempotency struct {
	Key         string
	Fingerprint []byte
}

// ParseIdempotencyKey checks a key as a client gives it: 1 to 255 printable
// ASCII characters.
func ParseIdempotencyKey(key string) error {
	bad := len(key) == 0 || len(key) > MaxIdempotencyKey
	for i := 0; i < len(key) && !bad; i++ {
		bad = key[i] < 0x20 || key[i] > 0x7e
	}
	if bad {
		return Invalid("Idempotency-Key", fmt.Sprintf("must be 1 to %d printable ASCII characters", MaxIdempotencyKey))
	}
	return nil
}

// SendOption changes how one send is made.
type SendOption func(*sendOptions)

type sendOptions struct {
	idem *Idempotency
}

// WithIdempotency makes a send idempotent under key (see Idempotency).
func WithIdempotency(key string, fingerprint []byte) SendOption {
	return func(o *sendOptions) { o.idem = &Idempotency{Key: key, Fingerprint: fingerprint} }
}

// IdempotentSend is what the store keeps of a send made under an
// idempotency key: the request's fingerprint and its outcome, item by item.
type IdempotentSend struct {
	AccountID   int64
	Key         string
	Fingerprint []byte
	Results     []byte // the outcome, as storedResults encodes it
	CreatedAt   time.Time
}

// IdempotencyTx is the idempotency part of a transaction.
type IdempotencyTx interface {
	// IdempotentSend returns the send an account made under key since
	// notBefore; ENOTFOUND if none.
	IdempotentSend(ctx context.Context, accountID int64, key string, notBefore time.Time) (*IdempotentSend, error)
	// SaveIdempotentSend records a send, replacing one of the same key made
	// before notBefore.
	SaveIdempotentSend(ctx context.Context, s *IdempotentSend, notBefore time.Time) error
	// DeleteIdempotentSendsBefore deletes what was recorded before cutoff.
	DeleteIdempotentSendsBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// storedResult is one item's outcome as an idempotent send keeps it.
type storedResult struct {
	MessageIDs []string     `json:"message_ids,omitempty"`
	Error      *storedError `json:"error,omitempty"`
}

type storedError struct {
	Code    string      `json:"code"`
	Message string      `json:"message,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Fields  FieldErrors `json:"fields,omitempty"`
}

func encodeResults(results []BatchResult) ([]byte, error) {
	out := make([]storedResult, len(results))
	for i, r := range results {
		if r.Sent != nil {
			out[i].MessageIDs = r.Sent.MessageIDs
			continue
		}
		var e *Error
		if !errors.As(r.Err, &e) {
			e = &Error{Code: EINTERNAL, Message: errorText(r.Err)}
		}
		out[i].Error = &storedError{Code: e.Code, Message: e.Message, Reason: e.Reason, Fields: e.Fields}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode idempotent send: %w", err)
	}
	return b, nil
}

func decodeResults(b []byte) ([]BatchResult, error) {
	var in []storedResult
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("decode idempotent send: %w", err)
	}
	out := make([]BatchResult, len(in))
	for i, r := range in {
		if r.Error != nil {
			out[i].Err = &Error{Code: r.Error.Code, Message: r.Error.Message, Reason: r.Error.Reason, Fields: r.Error.Fields}
			continue
		}
		out[i].Sent = &Sent{MessageIDs: r.MessageIDs, Replayed: true}
	}
	return out, nil
}

// prior returns the outcome of the send made under the same key within the
// window, or nil; the same key with another request, or from another token,
// is EINVALID.
func (i *Idempotency) prior(ctx context.Context, tx Tx, caller *Token, now time.Time) ([]BatchResult, error) {
	s, err := tx.IdempotentSend(ctx, caller.AccountID, i.Key, now.Add(-IdempotencyWindow))
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !bytes.Equal(s.Fingerprint, i.fingerprintOf(caller)) {
		return nil, &Error{Code: EINVALID, Reason: ReasonIdempotencyKeyReused, Message: "Validation failed",
			Fields: FieldErrors{"Idempotency-Key": {"was used with a different request, or by another token, in the last 24 hours: use a new key for a new request"}}}
	}
	return decodeResults(s.Results)
}

// save records results under the key, in the transaction that stored them.
func (i *Idempotency) save(ctx context.Context, tx Tx, caller *Token, results []BatchResult, now time.Time) error {
	b, err := encodeResults(results)
	if err != nil {
		return err
	}
	return tx.SaveIdempotentSend(ctx, &IdempotentSend{AccountID: caller.AccountID, Key: i.Key, Fingerprint: i.fingerprintOf(caller), Results: b, CreatedAt: now},
		now.Add(-IdempotencyWindow))
}

// fingerprintOf binds the request's fingerprint to the token that made it:
// a send's outcome is answered again only to the token it was made with
// (which may send what it sent), never to another token of the account that
// learnt the key.
func (i *Idempotency) fingerprintOf(caller *Token) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "token %d\n", caller.ID)
	h.Write(i.Fingerprint)
	return h.Sum(nil)
}

// replay returns the outcome of an earlier send under the same key, or nil,
// reading outside any write: a retry spends nothing and renders nothing.
func (m *Mailer) replay(ctx context.Context, caller *Token, idem *Idempotency) ([]BatchResult, error) {
	var out []BatchResult
	err := m.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = idem.prior(ctx, tx, caller, m.svc.now())
		return err
	})
	return out, err
}
