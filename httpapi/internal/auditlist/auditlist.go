// Package auditlist reads an account's audit rows for the endpoint and the
// webhook notifier, the runbook way: it knows the auditable types the
// endpoint serves and that a runbook's rows include its steps', and hands
// the statements to internal/auditsql, the only code that spells the audits
// table. The server and the notifier share it, so that they read the
// polling stream the same way without importing each other.
package auditlist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Types are the auditable types the endpoint serves, in the order of the
// enum in its OpenAPI document.
var Types = []string{runbooks.TypeStep, runbooks.TypeRunbook}

// Position is a place in the polling stream, ordered by (transaction id,
// row id); the stream resumes after it. The zero value is the stream's
// start.
type Position = auditsql.Position

// Stmt is one SQL statement with its arguments.
type Stmt = auditsql.Stmt

// Filter narrows the rows read. Empty fields select every value; an empty
// AuditableType selects both [Types].
type Filter struct {
	AuditableType string
	AuditableID   string
	// RunbookID selects the runbook's own rows and its steps' rows.
	RunbookID    string
	UserID       string
	Action       audit.Action
	Since, Until *time.Time // since inclusive, until exclusive
}

func (f *Filter) sql() *auditsql.ListFilter {
	lf := &auditsql.ListFilter{Types: Types, Type: f.AuditableType, ID: f.AuditableID, UserID: f.UserID,
		Action: string(f.Action), Since: f.Since, Until: f.Until}
	if f.RunbookID != "" {
		lf.ParentType, lf.ParentID = runbooks.TypeRunbook, f.RunbookID
	}
	return lf
}

// Page selects page (1-based) of perPage rows ordered by created_at then
// id, plus one row to tell whether a next page exists.
func Page(f *Filter, accountID int64, desc bool, page, perPage int) Stmt {
	return auditsql.ListPage(f.sql(), accountID, desc, page, perPage)
}

// Count counts the matching rows, but stops at limit+1.
func Count(f *Filter, accountID int64, limit int) Stmt {
	return auditsql.ListCount(f.sql(), accountID, limit)
}

// Poll selects up to perPage rows after p in the polling stream, plus one
// row to tell whether more are ready; outOfOrder is [OutOfOrder]'s answer
// for the database.
func Poll(f *Filter, accountID int64, p Position, perPage int, outOfOrder bool) Stmt {
	return auditsql.ListPoll(f.sql(), accountID, p, perPage, outOfOrder)
}

// ErrNotInLog is returned by [PositionOf] for an id that is not a row of
// the account.
var ErrNotInLog = errors.New("httpapi: after_id is not a row of this account's log")

// PositionOf returns the stream position of the account's row id; id 0 is
// the start of the stream.
func PositionOf(ctx context.Context, db *gorm.DB, accountID, id int64) (Position, error) {
	p, found, err := auditsql.ListPositionOf(ctx, db, accountID, id)
	switch {
	case err != nil:
		return Position{}, fmt.Errorf("httpapi: resolve after_id: %w", err)
	case !found:
		return Position{}, ErrNotInLog
	}
	return p, nil
}

// End returns the position of the last row of the account's polling
// stream: every row not yet in the stream sorts after it.
func End(ctx context.Context, db *gorm.DB, accountID int64, outOfOrder bool) (Position, error) {
	return auditsql.ListEnd(ctx, db, accountID, outOfOrder)
}

// OutOfOrder reports whether db's transactions can commit out of order, so
// that polling must stop below the oldest running one; caller names the
// constructor in the error for a database the module does not support.
func OutOfOrder(db *gorm.DB, caller string) (bool, error) {
	d := dialect.Of(db)
	if !d.Supported() {
		return false, fmt.Errorf("%s: dialect %q is not supported (postgres, sqlite)", caller, d.Name())
	}
	return d.CommitsOutOfOrder(), nil
}

// ReadTx runs fn in one read-only REPEATABLE READ transaction begun on
// db.Clauses(read...): with gorm's dbresolver plugin registered on db and
// dbresolver.Read in read, on one replica, so that fn's statements read one
// snapshot of it.
func ReadTx(db *gorm.DB, read []clause.Expression, fn func(tx *gorm.DB) error) error {
	return auditsql.ReadTx(db, read, fn)
}
