package tokend

import (
	"encoding/binary"
	"testing"
)

// The negative cache never grows past its bound, however many guesses land
// in one shard.
func TestNegativeCacheIsBounded(t *testing.T) {
	c := newAuthCache()
	var h [32]byte // h[0] == 0: every hash lands in shard 0
	for i := 0; i < 3*c.negLimit; i++ {
		binary.LittleEndian.PutUint64(h[1:], uint64(i))
		c.putUnknown(&h, c.gen.Load())
	}
	if n := len(c.shards[0].unknown); n == 0 || n > c.negLimit {
		t.Fatalf("shard holds %d unknown hashes, want 1..%d", n, c.negLimit)
	}
	// The most recent guess is remembered.
	if _, unknown := c.get(&h); !unknown {
		t.Fatal("the latest unknown hash was not kept")
	}
}
