package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokend/tokend"
)

// failingStore fails every call with err.
type failingStore struct {
	tokend.Store
	err error
}

func (f failingStore) Read(context.Context, func(tokend.Tx) error) error  { return f.err }
func (f failingStore) Write(context.Context, func(tokend.Tx) error) error { return f.err }
func (f failingStore) TokenByHash(context.Context, []byte) (*tokend.Token, error) {
	return nil, f.err
}

func TestStoreErrorsAreCounted(t *testing.T) {
	m := New()
	broken := m.Store(failingStore{err: errors.New("disk I/O error")})
	ctx := context.Background()
	broken.Read(ctx, nil)
	broken.Write(ctx, nil)
	broken.Write(ctx, nil)
	broken.TokenByHash(ctx, nil)
	for op, want := range map[string]float64{"read": 1, "write": 2, "token_by_hash": 1} {
		if got := testutil.ToFloat64(m.StoreErrors.WithLabelValues(op)); got != want {
			t.Errorf("store errors for %s = %v, want %v", op, got, want)
		}
	}
	// Domain outcomes (not found, invalid input) are not store errors.
	fine := m.Store(failingStore{err: tokend.Errorf(tokend.ENOTFOUND, "no such token")})
	fine.TokenByHash(ctx, nil)
	fine.Write(ctx, nil)
	if got := testutil.ToFloat64(m.StoreErrors.WithLabelValues("token_by_hash")); got != 1 {
		t.Errorf("a not-found lookup counted as a store error: %v", got)
	}
}
