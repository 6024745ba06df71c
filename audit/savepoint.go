package audit

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// savepointName is the savepoint that brackets a write and its audit rows
// when they are separate statements.
const savepointName = "gormaudit_write"

// guard makes a write and its audit rows one unit inside the caller's
// transaction when they are not one statement: a savepoint is set before
// the write, and if the audit rows cannot be written (a value the encoder
// refuses, an audit INSERT refused by the database, a change that must not
// happen unaudited) the write is undone by rolling back to it. So a caller
// that ignores the write's error and commits anyway commits neither the
// change nor its audit. On PostgreSQL a failed statement also aborts the
// transaction; on SQLite nothing else would stop that commit.
//
// A write in the transaction gorm itself began for the statement (no
// caller's transaction: gorm's default transaction) needs no savepoint:
// gorm rolls that transaction back whenever the statement ends with an
// error, and nobody else can commit it. Such a guard sets none, saving two
// statements per write, unless the write must be able to undo itself and
// go on (begin's undoable).
type guard struct {
	pool gorm.ConnPool
	ctx  context.Context
	// set: the savepoint was set; false in gorm's own transaction.
	set bool
}

// startedTransaction is the key under which gorm's BeginTransaction
// callback marks a statement whose transaction it began itself.
const startedTransaction = "gorm:started_transaction"

// begin sets the savepoint, unless the statement runs in the transaction
// gorm began for it and undoable is false: undo is then never called.
func begin(db *gorm.DB, undoable bool) (*guard, error) {
	g := &guard{pool: db.Statement.ConnPool, ctx: db.Statement.Context}
	if _, own := db.InstanceGet(startedTransaction); own && !undoable {
		return g, nil
	}
	if _, err := g.pool.ExecContext(g.ctx, "SAVEPOINT "+savepointName); err != nil {
		return nil, fmt.Errorf("set savepoint: %w", err)
	}
	g.set = true
	return g, nil
}

// keep releases the savepoint: the write and its audit rows stand or fall
// with the caller's transaction.
func (g *guard) keep() error {
	if !g.set {
		return nil
	}
	if _, err := g.pool.ExecContext(g.ctx, "RELEASE SAVEPOINT "+savepointName); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// undo rolls the write back to the savepoint and releases it. An error here
// leaves the transaction unusable, which is still safe: it cannot commit
// the write. Without a savepoint, gorm rolls its own transaction back.
func (g *guard) undo() {
	if !g.set {
		return
	}
	if _, err := g.pool.ExecContext(g.ctx, "ROLLBACK TO SAVEPOINT "+savepointName); err == nil {
		_, _ = g.pool.ExecContext(g.ctx, "RELEASE SAVEPOINT "+savepointName)
	}
}

// finish ends the guarded write: keep when db has no error, undo otherwise.
// A failure to release becomes the statement's error, after undoing.
func (g *guard) finish(db *gorm.DB) {
	if db.Error != nil {
		g.undo()
		return
	}
	if err := g.keep(); err != nil {
		g.undo()
		_ = db.AddError(err)
	}
}
