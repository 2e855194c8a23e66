package tokend_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

func newService(t *testing.T, now func() time.Time) *tokend.Service {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	format, _ := apikey.NewFormat("tk")
	return tokend.NewService(store, tokend.Options{ResetGrace: time.Hour, PurgeAfter: 24 * time.Hour, Format: format, Now: now})
}

// A caller authenticated just before it was deleted or narrowed must not act
// with what it had: every write re-reads the caller inside its transaction.
func TestWritesUseTheCallerAsItIsNow(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, nil)
	_, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	adminTok := &admin.Token
	acct := tokend.Permission{ResourceType: tokend.ResourceAccount, ResourceID: adminTok.AccountID, Level: tokend.Admin}
	second, err := svc.CreateToken(ctx, adminTok, tokend.TokenInput{Name: "second", Permissions: []tokend.Permission{acct}})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := svc.Authenticate(ctx, second.Value)
	if err != nil {
		t.Fatal(err)
	}

	// Narrowed: second loses account admin after it authenticated.
	p, err := svc.CreateProject(ctx, adminTok, "p")
	if err != nil {
		t.Fatal(err)
	}
	narrow := []tokend.Permission{{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Viewer}}
	if _, err := svc.UpdateToken(ctx, adminTok, second.ID, tokend.TokenPatch{Permissions: &narrow}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.CreateToken(ctx, stale, tokend.TokenInput{Name: "escalated", Permissions: []tokend.Permission{acct}})
	if tokend.ErrorCode(err) != tokend.EFORBIDDEN {
		t.Fatalf("a narrowed caller created an account admin token: err = %v, want EFORBIDDEN", err)
	}

	// Deleted: second is gone after it authenticated.
	if err := svc.DeleteToken(ctx, adminTok, second.ID); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["CreateToken"] = svc.CreateToken(ctx, stale, tokend.TokenInput{Name: "x", Permissions: narrow})
	_, checks["CreateProject"] = svc.CreateProject(ctx, stale, "q")
	_, checks["ResetToken"] = svc.ResetToken(ctx, stale, adminTok.ID, tokend.Expiry{})
	checks["DeleteToken"] = svc.DeleteToken(ctx, stale, adminTok.ID)
	for name, err := range checks {
		if tokend.ErrorCode(err) != tokend.EUNAUTHORIZED {
			t.Errorf("%s by a deleted caller: err = %v, want EUNAUTHORIZED", name, err)
		}
	}
}

func TestPurgeInterval(t *testing.T) {
	tests := []struct {
		purgeAfter, want time.Duration
	}{
		{0, time.Second},
		{time.Second, time.Second},
		{time.Minute, 15 * time.Second},
		{24 * time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		format, _ := apikey.NewFormat("tk")
		svc := tokend.NewService(nil, tokend.Options{PurgeAfter: tt.purgeAfter, Format: format})
		if got := svc.PurgeInterval(); got != tt.want {
			t.Errorf("PurgeInterval with PurgeAfter %v = %v, want %v", tt.purgeAfter, got, tt.want)
		}
	}
}

// flakyStore fails the next write when failNext is set.
type flakyStore struct {
	tokend.Store
	failNext bool
}

func (f *flakyStore) Write(ctx context.Context, fn func(tokend.Tx) error) error {
	if f.failNext {
		f.failNext = false
		return errors.New("database is locked")
	}
	return f.Store.Write(ctx, fn)
}

// A flush that fails loses nothing: the counts wait for the next flush.
func TestFailedFlushKeepsCounts(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &flakyStore{Store: db}
	format, _ := apikey.NewFormat("tk")
	svc := tokend.NewService(store, tokend.Options{Format: format})
	_, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		svc.RecordRequest(admin.ID, 200)
	}
	store.failNext = true
	if err := svc.FlushUsage(ctx); err == nil {
		t.Fatal("the failing flush reported success")
	}
	svc.RecordRequest(admin.ID, 404)
	if err := svc.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := svc.Usage(ctx, &admin.Token, admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Counts) != 2 {
		t.Fatalf("usage after a failed and a good flush = %v, want two counts", u.Counts)
	}
	day := u.Counts[0].Day
	if got, want := fmt.Sprint(u.Counts), fmt.Sprintf("[{%s client_error 1} {%s success 3}]", day, day); got != want {
		t.Fatalf("usage after a failed and a good flush = %s, want %s", got, want)
	}
}
