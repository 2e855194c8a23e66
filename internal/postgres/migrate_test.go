package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/testutil"
)

// A database made before the message allowance (migration 00001 only)
// migrates over the gap in the numbering (00002 and 00003 are not in this
// tree) to 00004, and every account gets its plan's allowance.
func TestUpgradeGivesAccountsTheirPlansMessageLimit(t *testing.T) {
	ctx := context.Background()
	url := testutil.Postgres(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (name, plan, rate_limit, created_at) VALUES
		('Free', 'free', 100, 0), ('Pro', 'pro', 1000, 0), ('Big', 'enterprise', 50000, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, url)
	want := map[string]int{"Free": tokend.PlanFree.DefaultMessageLimit(), "Pro": tokend.PlanPro.DefaultMessageLimit(),
		"Big": tokend.PlanEnterprise.DefaultMessageLimit()}
	if err := s.Read(ctx, func(tx tokend.Tx) error {
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
	}); err != nil {
		t.Fatal(err)
	}
}
