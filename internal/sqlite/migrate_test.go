package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/tokend/tokend"
)

// A database made before the message allowance (migrations up to 00006)
// migrates over the gap in the numbering (00007 and 00008 are not in this
// tree) to 00009, and every account gets its plan's allowance.
func TestUpgradeGivesAccountsTheirPlansMessageLimit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokend.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (name, plan, rate_limit, created_at) VALUES
		('Free', 'free', 100, 0), ('Pro', 'pro', 1000, 0), ('Big', 'enterprise', 50000, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
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
