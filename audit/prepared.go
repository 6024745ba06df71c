package audit

import (
	"context"
	"database/sql"
	"sync"

	"gorm.io/gorm"
)

// preparedCache keeps the statements the plugin runs itself prepared, on a
// database that parses every statement text anew (dialect.InProcess:
// SQLite, whose driver keeps no prepared statements; pgx keeps its own per
// connection). The plugin runs few statement texts, again and again: an
// audit INSERT, a version upsert, the RETURNING form of a write.
//
// A statement is prepared on the *sql.DB, which database/sql then prepares
// on each of its connections as a transaction first uses it there
// (sql.Tx.StmtContext). Preparing on the *sql.DB takes a connection, which
// a write holding the pool's only connection would wait for forever; so it
// is prepared in a goroutine of its own, once the pool has a connection to
// spare, and until then the statement runs unprepared.
type preparedCache struct {
	db *sql.DB // nil: nothing is prepared
	mu sync.Mutex
	// stmts holds each text's statement, nil while it is being prepared.
	stmts map[string]*sql.Stmt
}

// maxPrepared bounds the statements kept: texts are few, but a write of n
// rows has a text of its own for every n.
const maxPrepared = 256

// newPreparedCache returns the cache of db's statements; one that prepares
// nothing when db's connection pool is not a *sql.DB.
func newPreparedCache(db *gorm.DB) *preparedCache {
	c := &preparedCache{stmts: map[string]*sql.Stmt{}}
	if sqlDB, ok := db.ConnPool.(*sql.DB); ok {
		c.db = sqlDB
	}
	return c
}

// stmt returns query prepared for transaction pool, or nil when it is not
// (yet) prepared or pool is not a transaction of the cache's *sql.DB. The
// caller closes a statement it is given.
func (c *preparedCache) stmt(ctx context.Context, pool gorm.ConnPool, query string) *sql.Stmt {
	tx, ok := pool.(*sql.Tx)
	if c == nil || c.db == nil || !ok {
		return nil
	}
	c.mu.Lock()
	s, known := c.stmts[query]
	if !known && len(c.stmts) < maxPrepared {
		c.stmts[query] = nil
		go c.prepare(query)
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return tx.StmtContext(ctx, s)
}

// prepare prepares query on the *sql.DB; on failure the text is forgotten,
// to be tried again when it is next run.
func (c *preparedCache) prepare(query string) {
	s, err := c.db.PrepareContext(context.Background(), query)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.stmts, query)
		return
	}
	c.stmts[query] = s
}

// exec runs query with args in transaction pool, prepared when it can be.
func (c *preparedCache) exec(ctx context.Context, pool gorm.ConnPool, query string, args ...any) (sql.Result, error) {
	if s := c.stmt(ctx, pool, query); s != nil {
		defer s.Close()
		return s.ExecContext(ctx, args...)
	}
	return pool.ExecContext(ctx, query, args...)
}

// query runs query with args in transaction pool, prepared when it can be.
func (c *preparedCache) query(ctx context.Context, pool gorm.ConnPool, query string, args ...any) (*sql.Rows, error) {
	if s := c.stmt(ctx, pool, query); s != nil {
		// The rows keep the statement's connection and prepared form
		// until they are closed: closing the transaction's copy of the
		// statement now only spares the transaction keeping it.
		defer s.Close()
		return s.QueryContext(ctx, args...)
	}
	return pool.QueryContext(ctx, query, args...)
}
