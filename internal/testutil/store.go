package testutil

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/postgres"
	"github.com/tokend/tokend/internal/sqlite"
)

// StoreEnv chooses the store the HTTP and dashboard suites run on: "sqlite"
// (the default) or "postgres". scripts/test runs those suites on both.
const StoreEnv = "TOKEND_TEST_STORE"

// Store opens a new, empty store of the kind StoreEnv names, closed with t,
// and a function returning everything it holds as bytes, for the tests that
// look for secrets in a copy of the database.
func Store(t testing.TB) (tokend.Store, func() [][]byte) {
	t.Helper()
	stores, dump := Stores(t, 1)
	return stores[0], dump
}

// Stores opens n stores on one new, empty database of the kind StoreEnv
// names, as n instances of tokend share one, each closed with t; and a
// function returning everything the database holds as bytes.
func Stores(t testing.TB, n int) ([]tokend.Store, func() [][]byte) {
	t.Helper()
	ctx := context.Background()
	var open func() (tokend.Store, error)
	var dump func() [][]byte
	switch kind := os.Getenv(StoreEnv); kind {
	case "", "sqlite":
		path := filepath.Join(t.TempDir(), "tokend.db")
		open = func() (tokend.Store, error) { return sqlite.Open(ctx, path) }
		dump = func() [][]byte {
			var files [][]byte
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if b, err := os.ReadFile(path + suffix); err == nil {
					files = append(files, b)
				}
			}
			return files
		}
	case "postgres":
		url := Postgres(t)
		open = func() (tokend.Store, error) { return postgres.Open(ctx, url) }
		dump = func() [][]byte { return dumpPostgres(t, url) }
	default:
		t.Fatalf("%s=%q: want sqlite or postgres", StoreEnv, kind)
		return nil, nil
	}
	stores := make([]tokend.Store, n)
	for i := range stores {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores, dump
}

// dumpPostgres returns every row of every table, as JSON text.
func dumpPostgres(t testing.TB, url string) [][]byte {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var out [][]byte
	for _, name := range tables {
		var text sql.NullString
		if err := db.QueryRow(`SELECT string_agg(row_to_json(x)::text, E'\n') FROM "` + name + `" x`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		out = append(out, []byte(text.String))
	}
	return out
}
