// Package postgres implements tokend.Store on PostgreSQL, for several tokend
// instances sharing one database.
//
// Write transactions run at SERIALIZABLE isolation: a rule checked inside one
// (the last domain token, a reset, a claim) still holds at commit, or the
// transaction fails with a serialization error and is run again from the
// start. Functions passed to Write may therefore run more than once, and must
// keep no state across runs but what they return.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a tokend.Store backed by PostgreSQL.
type Store struct {
	db *sql.DB
}

var _ tokend.Store = (*Store)(nil)

// maxAttempts bounds the runs of one write transaction that keeps meeting
// serialization failures.
const maxAttempts = 30

// Open connects to the database at url (postgres://...) and applies every
// pending migration, under an advisory lock so that instances starting
// together do not race.
func Open(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", redacted(url), err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres %s: %w", redacted(url), err)
	}
	return s, nil
}

// redacted is url without a password, for errors.
func redacted(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return "(database)"
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return url
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return migrateFS(ctx, s.db, sub, locker)
}

// migrateFS applies every migration of fsys the database has not had, under
// locker. Migrations are numbered when their work starts, so they may be
// merged out of order (00004 before 00003): one the database has not had is
// applied even if a later one already was. Each is written to stand alone.
func migrateFS(ctx context.Context, db *sql.DB, fsys fs.FS, locker lock.SessionLocker) error {
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker), goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Read runs fn in a read-only transaction that sees one snapshot.
func (s *Store) Read(ctx context.Context, fn func(tokend.Tx) error) error {
	return s.inTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, fn)
}

// Write runs fn in a serializable transaction, again from the start when
// PostgreSQL reports a serialization failure or a deadlock.
func (s *Store) Write(ctx context.Context, fn func(tokend.Tx) error) error {
	return s.inTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable}, fn)
}

// inTx is the one transaction helper: it commits when fn returns nil, rolls
// back otherwise, returns fn's error unchanged so that codes survive, and
// retries what only failed to serialize.
func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, fn func(tokend.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.once(ctx, opts, fn)
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		// Back off, with jitter, so that the transactions that collided do
		// not collide again: up to 1 ms, 2 ms, 4 ms, ..., 64 ms.
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt-1, 6))))
	}
}

func (s *Store) once(ctx context.Context, opts *sql.TxOptions, fn func(tokend.Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	if err := fn(sqlstore.NewTx(rebind{sqlTx}, dialect)); err != nil {
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("postgres: rollback: %w", rbErr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// retryable reports a serialization failure or a deadlock: the transaction
// may succeed when run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// dialect is PostgreSQL's: concurrent claims skip each other's rows, and
// writes on an account hold its row.
var dialect = &sqlstore.Dialect{Greatest: "GREATEST", ClaimLock: " FOR UPDATE SKIP LOCKED", RowLock: " FOR UPDATE",
	LockAccount: "SELECT 1 FROM accounts WHERE id = ? FOR UPDATE", PermissionOrder: "p.resource_type, p.resource_id",
	IsUniqueViolation: isUniqueViolation}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// rebind runs queries written with ? placeholders, as the SQLite store's
// are, with PostgreSQL's $1, $2, ...
type rebind struct{ q sqlstore.Querier }

func (r rebind) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.q.ExecContext(ctx, placeholders(query), args...)
}

func (r rebind) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.q.QueryContext(ctx, placeholders(query), args...)
}

func (r rebind) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.q.QueryRowContext(ctx, placeholders(query), args...)
}

// placeholders turns each ? outside a quoted string into $n.
func placeholders(query string) string {
	if !strings.ContainsRune(query, '?') {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		switch c := query[i]; {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TokenByHash looks a token up by the hash of its value, outside any transaction.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*tokend.Token, error) {
	return sqlstore.NewTx(rebind{s.db}, dialect).TokenByHash(ctx, hash)
}

// ForEachToken streams every token unexpired at now, for warming a cache.
func (s *Store) ForEachToken(ctx context.Context, now time.Time, fn func(*tokend.Token) error) error {
	return sqlstore.NewTx(rebind{s.db}, dialect).ForEachToken(ctx, now, fn)
}

// AuthChangesSince returns the authentication changes after afterID.
func (s *Store) AuthChangesSince(ctx context.Context, afterID int64) ([]tokend.AuthChange, error) {
	return sqlstore.NewTx(rebind{s.db}, dialect).AuthChangesSince(ctx, afterID)
}

// LastAuthChange is the highest change ID so far.
func (s *Store) LastAuthChange(ctx context.Context) (int64, error) {
	return sqlstore.NewTx(rebind{s.db}, dialect).LastAuthChange(ctx)
}

// SpendQuota spends n units of a token's quota in one statement, outside
// any transaction: the row's lock orders concurrent spends without the
// serialization failures a serializable transaction would retry.
func (s *Store) SpendQuota(ctx context.Context, tokenID int64, start time.Time, limit, n int64) (int64, bool, error) {
	return sqlstore.NewTx(rebind{s.db}, dialect).SpendQuota(ctx, tokenID, start, limit, n)
}

// RefundQuota gives back n units of a token's quota.
func (s *Store) RefundQuota(ctx context.Context, tokenID int64, start time.Time, n int64) error {
	return sqlstore.NewTx(rebind{s.db}, dialect).RefundQuota(ctx, tokenID, start, n)
}
