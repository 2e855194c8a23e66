package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/postgres"
	"github.com/tokend/tokend/internal/storetest"
	"github.com/tokend/tokend/internal/testutil"
)

// migrations are PostgreSQL's, for the shared tests of a store's migrations.
var migrations = storetest.Migrations{
	Embedded:    os.DirFS("migrations"), // the files embedded
	NewDatabase: func(t *testing.T) string { return testutil.Postgres(t) },
	SQL:         func(url string) (*sql.DB, error) { return sql.Open("pgx", url) },
	Migrate:     postgres.MigrateFS,
	NewTx:       func(db *sql.DB) tokend.Tx { return postgres.NewTx(db) },
	Open: func(ctx context.Context, url string) (tokend.Store, error) {
		return postgres.Open(ctx, url)
	},
}

// A database made before the message allowance (migration 00001 only)
// migrates to 00004, over 00002 and 00003 numbered before it but merged
// after it, and every account gets its plan's allowance.
func TestUpgradeGivesAccountsTheirPlansMessageLimit(t *testing.T) {
	storetest.UpgradeGivesAccountsTheirPlansMessageLimit(t, migrations, 1)
}

// A migration merged after a later-numbered one is still applied, and the
// capture quota's counts start from the mail already captured.
func TestMigrationsApplyOutOfOrder(t *testing.T) {
	storetest.MigrationsApplyOutOfOrder(t, migrations, "00003_capture_quota.sql")
}
