package postgres_test

import (
	"context"
	"database/sql"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/postgres"
	"github.com/tokend/tokend/internal/storetest"
	"github.com/tokend/tokend/internal/testutil"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tokend.Store { return open(t, testutil.Postgres(t)) })
}

// Instances starting together on one database migrate it once, under the
// lock, and all come up.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	url := testutil.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A migration merged after a later-numbered one is still applied, and the
// capture quota's counts start from the mail already captured.
func TestMigrationsApplyOutOfOrder(t *testing.T) {
	ctx := context.Background()
	url := testutil.Postgres(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	partial := fstest.MapFS{"99999_later.sql": {Data: []byte("-- +goose Up\nCREATE TABLE later (x INTEGER);\n-- +goose Down\nDROP TABLE later;\n")}}
	// Every migration but the capture quota's, which arrives after 99999.
	for _, name := range []string{"00001_initial.sql", "00002_domain_dns.sql", "00004_message_limit.sql"} {
		b, err := fs.ReadFile(postgres.Migrations(), name)
		if err != nil {
			t.Fatal(err)
		}
		partial[name] = &fstest.MapFile{Data: b}
	}
	if err := postgres.MigrateFS(ctx, db, partial); err != nil {
		t.Fatal(err)
	}
	tx := postgres.NewTx(db)
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

	s := open(t, url) // every embedded migration: the ones after 00001 are applied though 99999 was
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
