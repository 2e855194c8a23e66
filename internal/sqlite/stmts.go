package sqlite

import (
	"context"
	"database/sql"
	"sync"

	"github.com/tokend/tokend/internal/sqlstore"
)

// stmtCache prepares each query once per pool. SQLite spends much of a short
// query's time parsing and planning it; a prepared statement skips that.
// Inside a transaction, database/sql reuses the statement prepared on the
// transaction's connection (the writer pool has exactly one).
//
// A query not prepared yet runs unprepared, and is prepared in the background
// once the pool has a free connection: preparing inside a transaction on the
// one-connection writer pool would wait for the very connection it holds.
type stmtCache struct {
	db      *sql.DB
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
	closed  bool
	wg      sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt), pending: make(map[string]bool)}
}

// get returns the prepared statement for query, or nil if it is not ready yet.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil || c.closed || c.pending[query] {
		return st
	}
	c.pending[query] = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		st, err := c.db.PrepareContext(context.Background(), query)
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.pending, query)
		switch {
		case err != nil: // it keeps running unprepared; the next get tries again
		case c.closed:
			st.Close()
		default:
			c.stmts[query] = st
		}
	}()
	return nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	c.closed = true
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// preparedQuerier runs queries through the cache, inside tx when it is set.
type preparedQuerier struct {
	cache *stmtCache
	tx    *sql.Tx
}

// plain is where a query runs when its statement is not prepared yet.
func (p preparedQuerier) plain() sqlstore.Querier {
	if p.tx != nil {
		return p.tx
	}
	return p.cache.db
}

func (p preparedQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	st := p.cache.get(query)
	if st == nil || p.tx == nil {
		return st
	}
	return p.tx.StmtContext(ctx, st)
}

func (p preparedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.plain().ExecContext(ctx, query, args...)
}

func (p preparedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.plain().QueryContext(ctx, query, args...)
}

func (p preparedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.plain().QueryRowContext(ctx, query, args...)
}
