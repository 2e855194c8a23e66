package tokend_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

// spyStore counts authentication lookups and can hold one open after it has
// read the store.
type spyStore struct {
	tokend.Store
	lookups atomic.Int64
	hold    chan chan struct{} // when set, a lookup sends a channel here and waits on it
}

func (s *spyStore) TokenByHash(ctx context.Context, h []byte) (*tokend.Token, error) {
	s.lookups.Add(1)
	t, err := s.Store.TokenByHash(ctx, h)
	if s.hold != nil {
		release := make(chan struct{})
		s.hold <- release
		<-release
	}
	return t, err
}

type fixture struct {
	svc   *tokend.Service
	store *spyStore
	admin *tokend.IssuedToken
	path  string
}

func newFixture(t *testing.T, opts tokend.Options) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.db")
	return openFixture(t, path, opts)
}

func openFixture(t *testing.T, path string, opts tokend.Options) *fixture {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Format, _ = apikey.NewFormat("tk")
	f := &fixture{store: &spyStore{Store: db}, path: path}
	f.svc = tokend.NewService(f.store, opts)
	return f
}

func (f *fixture) account(t *testing.T) *tokend.IssuedToken {
	t.Helper()
	_, admin, err := f.svc.CreateAccount(context.Background(), "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	f.admin = admin
	return admin
}

func (f *fixture) token(t *testing.T, name string) *tokend.IssuedToken {
	t.Helper()
	tok, err := f.svc.CreateToken(context.Background(), &f.admin.Token, tokend.TokenInput{Name: name,
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: f.admin.AccountID, Level: tokend.Viewer}}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCachedTokenCostsOneLookup(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	f.account(t)
	tok := f.token(t, "hot")
	for i := 0; i < 100; i++ {
		if _, err := f.svc.Authenticate(context.Background(), tok.Value); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.store.lookups.Load(); n != 1 {
		t.Fatalf("100 authentications made %d store lookups, want 1", n)
	}
}

func TestUnknownAndForgedTokensCostAtMostOneLookup(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	f.account(t)
	format, _ := apikey.NewFormat("tk")
	unknown, _ := format.Generate("live") // well-formed, never issued
	other := "x"                          // a checksum character that differs from the real one
	if unknown[len(unknown)-1] == 'x' {
		other = "y"
	}
	forged := unknown[:len(unknown)-1] + other
	for i := 0; i < 50; i++ {
		if _, err := f.svc.Authenticate(context.Background(), forged); tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
			t.Fatalf("forged token: %v", err)
		}
	}
	if n := f.store.lookups.Load(); n != 0 {
		t.Fatalf("a value failing its checksum reached the store %d times", n)
	}
	for i := 0; i < 50; i++ {
		if _, err := f.svc.Authenticate(context.Background(), unknown); tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
			t.Fatalf("unknown token: %v", err)
		}
	}
	if n := f.store.lookups.Load(); n != 1 {
		t.Fatalf("50 tries of one unknown token made %d store lookups, want 1", n)
	}
}

// A lookup that read the store before a revocation and fills the cache after
// it must not bring the token back.
func TestRefillRacingRevocationDoesNotResurrect(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	f.account(t)
	tok := f.token(t, "doomed")
	f.store.hold = make(chan chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Authenticate(context.Background(), tok.Value)
		done <- err
	}()
	release := <-f.store.hold // the lookup has read the token, not yet cached it
	f.store.hold = nil
	if err := f.svc.DeleteToken(context.Background(), &f.admin.Token, tok.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the in-flight authentication: %v", err) // it began before the delete
	}
	if _, err := f.svc.Authenticate(context.Background(), tok.Value); tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
		t.Fatalf("after the delete the token authenticates: err = %v", err)
	}
}

func TestCachedAuthenticationAllocatesNothing(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	f.account(t)
	tok := f.token(t, "hot")
	ctx := context.Background()
	if _, err := f.svc.Authenticate(ctx, tok.Value); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { f.svc.Authenticate(ctx, tok.Value) }); n != 0 {
		t.Fatalf("a cached authentication allocates %v times", n)
	}
}

func TestDisabledCacheLooksUpEveryTime(t *testing.T) {
	f := newFixture(t, tokend.Options{DisableAuthCache: true})
	f.account(t)
	tok := f.token(t, "cold")
	for i := 0; i < 10; i++ {
		if _, err := f.svc.Authenticate(context.Background(), tok.Value); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.store.lookups.Load(); n != 10 {
		t.Fatalf("10 authentications made %d lookups, want 10", n)
	}
}

// Two processes on one database: a change made by one reaches the other's
// cache at its next sync.
func TestSyncAppliesChangesFromAnotherProcess(t *testing.T) {
	a := newFixture(t, tokend.Options{})
	a.account(t)
	tok := a.token(t, "shared")
	b := openFixture(t, a.path, tokend.Options{})
	ctx := context.Background()
	if n, err := b.svc.WarmAuthCache(ctx); err != nil || n != 2 {
		t.Fatalf("warm: %d tokens, %v; want 2", n, err)
	}
	got, err := b.svc.Authenticate(ctx, tok.Value)
	if err != nil || got.AccountLimit != 100 {
		t.Fatalf("before: %+v, %v", got, err)
	}
	if b.store.lookups.Load() != 0 {
		t.Fatal("a warmed cache looked a token up")
	}
	if _, err := a.svc.SetPlan(ctx, a.admin.AccountID, tokend.PlanPro, 0, 0, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.DeleteToken(ctx, &a.admin.Token, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.SyncAuthCache(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Authenticate(ctx, tok.Value); tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
		t.Fatalf("deleted elsewhere, still authenticates here: %v", err)
	}
	admin, err := b.svc.Authenticate(ctx, a.admin.Value)
	if err != nil || admin.AccountLimit != 1000 {
		t.Fatalf("plan changed elsewhere: limit %+v, %v; want 1000", admin, err)
	}
}

// Expired tokens leave the cache and are not cached again.
func TestExpiredTokensLeaveTheCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	f := newFixture(t, tokend.Options{Now: func() time.Time { return now.Add(time.Duration(offset.Load())) }})
	f.account(t)
	exp := now.Add(time.Minute)
	tok, err := f.svc.CreateToken(context.Background(), &f.admin.Token, tokend.TokenInput{Name: "brief", Expiry: tokend.Expiry{Set: true, At: &exp}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(context.Background(), tok.Value); err != nil {
		t.Fatal(err)
	}
	before := f.svc.CachedTokens()
	offset.Store(int64(time.Minute))
	if _, err := f.svc.Authenticate(context.Background(), tok.Value); tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
		t.Fatalf("expired: %v", err)
	}
	if f.svc.CachedTokens() != before-1 {
		t.Fatalf("cache holds %d tokens after expiry, want %d", f.svc.CachedTokens(), before-1)
	}
}
