// Package sqlite implements tokend.Store on a SQLite file.
//
// Writes go through one connection opened with BEGIN IMMEDIATE, so write
// transactions are serialized and a rule checked inside one still holds at
// commit; reads use a separate pool and, in WAL mode, never wait for writes.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a tokend.Store backed by SQLite.
type Store struct {
	path       string
	write      *sql.DB
	read       *sql.DB
	writeStmts *stmtCache
	readStmts  *stmtCache
}

var _ tokend.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and applies every
// pending migration.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		// FULL: a commit is on disk before it is acknowledged, so a power
		// loss cannot take back a token issued or an email accepted.
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Set("_txlock", txlock)
		return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	}
	// The database holds hashes and sealed secrets only, but still nothing
	// for other users of the machine: a new file, and its journal, are the
	// owner's alone.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, write: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	s.read = r
	s.writeStmts, s.readStmts = newStmtCache(w), newStmtCache(r)
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return migrateFS(ctx, s.write, sub)
}

// migrateFS applies every migration of fsys the database has not had.
// Migrations are numbered when their work starts, so they may be merged out
// of order (00009 before 00008): one the database has not had is applied
// even if a later one already was. Each is written to stand alone.
func migrateFS(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.readStmts.close(), s.writeStmts.close(), s.read.Close())
	}
	errs = append(errs, s.write.Close())
	return errors.Join(errs...)
}

// Read runs fn in a read transaction.
func (s *Store) Read(ctx context.Context, fn func(tokend.Tx) error) error {
	return inTx(ctx, s.read, s.readStmts, fn)
}

// Write runs fn in a serialized write transaction.
func (s *Store) Write(ctx context.Context, fn func(tokend.Tx) error) error {
	return inTx(ctx, s.write, s.writeStmts, fn)
}

// inTx is the one transaction helper: it commits when fn returns nil and rolls
// back otherwise, returning fn's error unchanged so that codes survive.
func inTx(ctx context.Context, db *sql.DB, stmts *stmtCache, fn func(tokend.Tx) error) error {
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(sqlstore.NewTx(preparedQuerier{cache: stmts, tx: sqlTx}, dialect)); err != nil {
		if rbErr := sqlTx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("sqlite: rollback: %w", rbErr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// TokenByHash looks a token up by the hash of its value: one indexed query on
// the reader pool, outside any transaction.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*tokend.Token, error) {
	return sqlstore.NewTx(preparedQuerier{cache: s.readStmts}, dialect).TokenByHash(ctx, hash)
}

// ForEachToken streams every token unexpired at now, for warming a cache.
func (s *Store) ForEachToken(ctx context.Context, now time.Time, fn func(*tokend.Token) error) error {
	return sqlstore.NewTx(s.read, dialect).ForEachToken(ctx, now, fn)
}

// AuthChangesSince returns the authentication changes after afterID.
func (s *Store) AuthChangesSince(ctx context.Context, afterID int64) ([]tokend.AuthChange, error) {
	return sqlstore.NewTx(s.read, dialect).AuthChangesSince(ctx, afterID)
}

// LastAuthChange is the highest change ID so far.
func (s *Store) LastAuthChange(ctx context.Context) (int64, error) {
	return sqlstore.NewTx(s.read, dialect).LastAuthChange(ctx)
}

// dialect is SQLite's: one writer at a time, so no locks to take.
var dialect = &sqlstore.Dialect{Greatest: "max", PermissionOrder: "p.rowid", IsUniqueViolation: isUniqueViolation}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// SpendQuota spends n units of a token's quota in one statement on the
// writer, outside any transaction.
func (s *Store) SpendQuota(ctx context.Context, tokenID int64, start time.Time, limit, n int64) (int64, bool, error) {
	return sqlstore.NewTx(preparedQuerier{cache: s.writeStmts}, dialect).SpendQuota(ctx, tokenID, start, limit, n)
}

// RefundQuota gives back n units of a token's quota.
func (s *Store) RefundQuota(ctx context.Context, tokenID int64, start time.Time, n int64) error {
	return sqlstore.NewTx(preparedQuerier{cache: s.writeStmts}, dialect).RefundQuota(ctx, tokenID, start, n)
}
