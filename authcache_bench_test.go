package tokend

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/tokend/tokend/apikey"
)

// cachedService returns a Service whose cache holds n tokens and the value of
// one of them. No store is needed: every lookup hits the cache.
func cachedService(b *testing.B, n int) (*Service, string) {
	b.Helper()
	format, _ := apikey.NewFormat("tk")
	s := NewService(nil, Options{Format: format})
	perms := []Permission{{ResourceType: ResourceProject, ResourceID: 7, Level: Admin}}
	var h [32]byte
	for i := 1; i < n; i++ {
		binary.LittleEndian.PutUint64(h[:], uint64(i))
		h = sha256.Sum256(h[:])
		s.cache.put(&h, &Token{ID: int64(i), AccountID: int64(i%1000 + 1), Name: "token", Environment: Live,
			Permissions: perms, AccountLimit: 1000}, s.cache.gen.Load())
	}
	value, _ := format.Generate("live")
	h = apikey.Hash(value)
	s.cache.put(&h, &Token{ID: int64(n), AccountID: 1, Name: "mine", Environment: Live, Permissions: perms, AccountLimit: 1000}, s.cache.gen.Load())
	return s, value
}

// BenchmarkAuthenticate is the whole in-process verification: checksum, hash,
// cache lookup, environment and expiry, at 1k and 1M cached tokens.
func BenchmarkAuthenticate(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			s, value := cachedService(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Authenticate(ctx, value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCacheLookup is the cache lookup alone.
func BenchmarkCacheLookup(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			s, value := cachedService(b, n)
			h := apikey.Hash(value)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if t, _ := s.cache.get(&h); t == nil {
					b.Fatal("miss")
				}
			}
		})
	}
}

// BenchmarkCacheMemory reports the heap each cached token takes, principal
// and map entries included, at 1M tokens.
func BenchmarkCacheMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, _ := cachedService(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/token")
		runtime.KeepAlive(s)
	}
}

// BenchmarkPermissionCheck is deciding a caller's level on a sandbox through
// a project permission.
func BenchmarkPermissionCheck(b *testing.B) {
	perms := []Permission{{ResourceType: ResourceDomain, ResourceID: 3, Level: Admin}, {ResourceType: ResourceProject, ResourceID: 7, Level: Viewer}}
	sandbox := Resource{Type: ResourceSandbox, ID: 11, AccountID: 1, ProjectID: 7}
	b.ReportAllocs()
	for b.Loop() {
		if LevelOn(perms, sandbox) != Viewer {
			b.Fatal("wrong level")
		}
	}
}
