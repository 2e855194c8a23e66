package tokend

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tokend/tokend/apikey"
)

// The negative cache never grows past its bound, however many guesses land
// in one shard.
func TestNegativeCacheIsBounded(t *testing.T) {
	c := newAuthCache()
	var h [32]byte // h[0] == 0: every hash lands in shard 0
	for i := 0; i < 3*c.negLimit; i++ {
		binary.LittleEndian.PutUint64(h[1:], uint64(i))
		c.PutUnknown(&h, c.Gen())
	}
	if n := len(c.shards[0].unknown); n == 0 || n > c.negLimit {
		t.Fatalf("shard holds %d unknown hashes, want 1..%d", n, c.negLimit)
	}
	// The most recent guess is remembered.
	if _, unknown := c.get(&h); !unknown {
		t.Fatal("the latest unknown hash was not kept")
	}
}

// oneTokenStore knows a single token, by its hash.
type oneTokenStore struct {
	Store
	hash [32]byte
	tok  Token
}

func (o *oneTokenStore) TokenByHash(_ context.Context, h []byte) (*Token, error) {
	if [32]byte(h) != o.hash {
		return nil, Errorf(ENOTFOUND, "no token")
	}
	t := o.tok
	return &t, nil
}

// Replaying an expired token evicts it once; later replays, now uncached, do
// not bump the generation, which would keep other tokens' refills from being cached.
func TestExpiredTokenReplayLeavesTheGenerationAlone(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	format, _ := apikey.NewFormat("tk")
	value, _ := format.Generate("live")
	exp := now.Add(time.Minute)
	store := &oneTokenStore{hash: apikey.Hash(value), tok: Token{ID: 1, AccountID: 1, Environment: Live, ExpiresAt: &exp}}
	s := NewService(store, Options{Format: format, Now: func() time.Time { return clock }})
	ctx := context.Background()
	if _, err := s.Authenticate(ctx, value); err != nil {
		t.Fatal(err)
	}
	clock = exp
	if _, err := s.Authenticate(ctx, value); ErrorCode(err) != EUNAUTHORIZED {
		t.Fatalf("expired token: %v", err)
	}
	gen := s.cache.gen.Load()
	for i := 0; i < 10; i++ {
		s.Authenticate(ctx, value)
	}
	if got := s.cache.gen.Load(); got != gen {
		t.Fatalf("10 replays of an expired token moved the generation from %d to %d", gen, got)
	}
}

// A flush forgets verified tokens and unknown hashes alike, and a refill
// that read the store before it cannot put the old entry back.
func TestFlushForgetsEverything(t *testing.T) {
	c := newAuthCache()
	var known, unknown [32]byte
	known[0], unknown[0] = 1, 2
	c.put(&known, &Token{ID: 7, AccountID: 1}, c.Gen())
	c.PutUnknown(&unknown, c.Gen())
	before := c.Gen()
	c.flush()
	if t1, _ := c.get(&known); t1 != nil {
		t.Error("a verified token survived the flush")
	}
	if _, u := c.get(&unknown); u {
		t.Error("an unknown hash survived the flush")
	}
	c.put(&known, &Token{ID: 7, AccountID: 1}, before) // a refill that read before the flush
	if t1, _ := c.get(&known); t1 != nil || c.Len() != 0 {
		t.Error("a refill from before the flush came back")
	}
}
