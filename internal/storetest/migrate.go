package storetest

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tokend/tokend"
)

// Migrations is what the tests of a store's migrations need of it. They
// work on its database below the store, as an older tokend left it, and
// then open it as the store does.
type Migrations struct {
	// Embedded are the store's migrations (goose files): those it embeds,
	// all of which Open applies.
	Embedded fs.FS
	// NewDatabase creates a new, empty database for t, closed or dropped
	// with t, and returns what Open and SQL take: a path or a URL.
	NewDatabase func(t *testing.T) string
	// SQL opens the database with database/sql, with foreign keys enforced.
	SQL func(name string) (*sql.DB, error)
	// Migrate applies the migrations of fsys to db as Open applies the
	// embedded ones, out of order where the numbering has gaps.
	Migrate func(ctx context.Context, db *sql.DB, fsys fs.FS) error
	// NewTx writes to db directly, as the store's transactions do.
	NewTx func(db *sql.DB) tokend.Tx
	// Open opens the database as the store.
	Open func(ctx context.Context, name string) (tokend.Store, error)
}

// laterMigration is a migration numbered after every real one: a database
// that has it was migrated on a branch merged before the one that brings an
// earlier-numbered migration.
var laterMigration = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE later (x INTEGER);\n-- +goose Down\nDROP TABLE later;\n")}

// embeddedWhere returns the embedded migrations for which keep is true.
func (m Migrations) embeddedWhere(t *testing.T, keep func(name string, version int64) bool) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(m.Embedded, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		version, err := goose.NumericComponent(path)
		if err != nil || !keep(path, version) {
			return err
		}
		b, err := fs.ReadFile(m.Embedded, path)
		out[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	return out
}

// openSQL opens name with database/sql, closed with t.
func (m Migrations) openSQL(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := m.SQL(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openStore opens name as the store, which applies every embedded migration
// the database has not had; it is closed with t.
func (m Migrations) openStore(t *testing.T, name string) tokend.Store {
	t.Helper()
	s, err := m.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("opening a database migrated by an older tokend: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// UpgradeGivesAccountsTheirPlansMessageLimit makes a database with the
// migrations up to before (the last one before the message allowance's) and
// three accounts, opens it as the store, and checks that every account has
// its plan's default message allowance.
func UpgradeGivesAccountsTheirPlansMessageLimit(t *testing.T, m Migrations, before int64) {
	ctx := context.Background()
	name := m.NewDatabase(t)
	db := m.openSQL(t, name)
	old := m.embeddedWhere(t, func(_ string, version int64) bool { return version <= before })
	if err := m.Migrate(ctx, db, old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (name, plan, rate_limit, created_at) VALUES
		('Free', 'free', 100, 0), ('Pro', 'pro', 1000, 0), ('Big', 'enterprise', 50000, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := m.openStore(t, name)
	want := map[string]int{"Free": tokend.PlanFree.DefaultMessageLimit(), "Pro": tokend.PlanPro.DefaultMessageLimit(),
		"Big": tokend.PlanEnterprise.DefaultMessageLimit()}
	read(t, s, func(tx tokend.Tx) error {
		all, err := tx.Accounts(ctx)
		if len(all) != 3 {
			t.Fatalf("accounts after the upgrade: %+v", all)
		}
		for _, a := range all {
			if a.MessageLimit != want[a.Name] {
				t.Errorf("%s (%s): message limit %d, want %d", a.Name, a.Plan, a.MessageLimit, want[a.Name])
			}
		}
		return err
	})
}

// MigrationsApplyOutOfOrder makes a database with every embedded migration
// but skipped (the capture quota's, a file name) and with a later-numbered
// one, as if skipped were merged after it, and captures two emails. Opening
// it as the store must still apply skipped, and the capture quota's counts
// must start from the mail already captured.
func MigrationsApplyOutOfOrder(t *testing.T, m Migrations, skipped string) {
	ctx := context.Background()
	if _, err := fs.Stat(m.Embedded, skipped); err != nil {
		t.Fatalf("the migration to skip: %v", err)
	}
	name := m.NewDatabase(t)
	db := m.openSQL(t, name)
	partial := m.embeddedWhere(t, func(path string, _ int64) bool { return path != skipped })
	partial["99999_later.sql"] = laterMigration
	if err := m.Migrate(ctx, db, partial); err != nil {
		t.Fatal(err)
	}
	tx := m.NewTx(db)
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

	s := m.openStore(t, name)
	read(t, s, func(tx tokend.Tx) error {
		u, err := tx.SandboxUsage(ctx, sb.ID)
		if u != (tokend.SandboxUsage{Emails: 2, Bytes: 7}) {
			t.Errorf("usage after the migration = %+v, want the 2 emails (7 bytes) captured before it", u)
		}
		return err
	})
}
