package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/sqlstore"
)

// withoutMigration is the embedded migrations without one, and with a later
// one the database will have had: a database migrated on a branch merged
// before the one that brings skipped.
func withoutMigration(t *testing.T, skipped string) fs.FS {
	t.Helper()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{"99999_later.sql": {Data: []byte("-- +goose Up\nCREATE TABLE later (x INTEGER);\n-- +goose Down\nDROP TABLE later;\n")}}
	found := false
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if path == skipped {
			found = true
			return nil
		}
		b, err := fs.ReadFile(sub, path)
		out[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil || !found {
		t.Fatalf("migrations without %s: %v (found: %v)", skipped, err, found)
	}
	return out
}

// A migration merged after a later-numbered one is still applied, and the
// capture quota's counts start from the mail already captured.
func TestMigrationsApplyOutOfOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokend.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateFS(ctx, db, withoutMigration(t, "00008_capture_quota.sql")); err != nil {
		t.Fatal(err)
	}
	tx := sqlstore.NewTx(db, dialect)
	now := time.Now()
	a := &tokend.Account{Name: "Acme", Plan: tokend.PlanFree, RateLimit: 100, MessageLimit: 1000, CreatedAt: now}
	if err := tx.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	p := &tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "P", CreatedAt: now}
	if err := tx.CreateResource(ctx, p); err != nil {
		t.Fatal(err)
	}
	sb := &tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "S", CreatedAt: now}
	if err := tx.CreateResource(ctx, sb); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{3, 4} {
		e := &tokend.StoredEmail{AccountID: a.ID, SandboxID: sb.ID, Raw: make([]byte, size), Size: size, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateEmail(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("opening a database that lacks an earlier migration: %v", err)
	}
	defer s.Close()
	if err := s.Read(ctx, func(tx tokend.Tx) error {
		u, err := tx.SandboxUsage(ctx, sb.ID)
		if u != (tokend.SandboxUsage{Emails: 2, Bytes: 7}) {
			t.Errorf("usage after the migration = %+v, want the 2 emails (7 bytes) captured before it", u)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
