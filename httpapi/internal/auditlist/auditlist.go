// Package auditlist builds the SQL that reads an account's audit rows for
// the endpoint and the webhook notifier: the filters they share, a page, a
// capped count, and the polling stream with its positions. It is the one
// place under httpapi that spells the audits table and decides the
// database dialect, so that the server and the notifier read the stream
// the same way without importing each other.
package auditlist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Types are the auditable types the endpoint serves, in the order of the
// enum in its OpenAPI document.
var Types = []string{runbooks.TypeStep, runbooks.TypeRunbook}

// columns are the audit row's columns a list returns.
const columns = `id, account_id, auditable_id, auditable_type, associated_id, associated_type, user_id, user_type, ` +
	`action, audited_changes, version, comment, remote_address, request_uuid, created_at, transaction_id`

// finishedSQL restricts the polling stream to rows written by transactions
// that have ended: every transaction id below the snapshot's xmin has
// committed or aborted, and every row still to come will have a
// transaction id at or above it. On SQLite the transaction id is 0 and the
// single writer commits ids in order, so no restriction is needed.
const finishedSQL = `transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// Position is a place in the polling stream, which is ordered by
// (transaction id, row id); the stream resumes after it. The zero value is
// the stream's start.
type Position struct {
	TxID int64
	ID   int64
}

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

// Stmt is one SQL statement with its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// Where is the WHERE clause shared by the page, count and polling
// statements: the account first, always, then f.
func Where(f *Filter, accountID int64) Stmt {
	var w strings.Builder
	args := []any{accountID}
	w.WriteString(`account_id = ?`)
	if f.AuditableType != "" {
		w.WriteString(` AND auditable_type = ?`)
		args = append(args, f.AuditableType)
	} else {
		w.WriteString(` AND auditable_type IN (?, ?)`)
		args = append(args, Types[0], Types[1])
	}
	add := func(cond string, v any) {
		w.WriteString(` AND ` + cond)
		args = append(args, v)
	}
	if f.AuditableID != "" {
		add(`auditable_id = ?`, f.AuditableID)
	}
	if f.RunbookID != "" {
		// The runbook's own rows, and its steps' rows (associated with it).
		w.WriteString(` AND ((auditable_type = ? AND auditable_id = ?) OR (associated_type = ? AND associated_id = ?))`)
		args = append(args, runbooks.TypeRunbook, f.RunbookID, runbooks.TypeRunbook, f.RunbookID)
	}
	if f.UserID != "" {
		add(`user_id = ?`, f.UserID)
	}
	if f.Action != "" {
		add(`action = ?`, string(f.Action))
	}
	if f.Since != nil {
		add(`created_at >= ?`, *f.Since)
	}
	if f.Until != nil {
		add(`created_at < ?`, *f.Until)
	}
	return Stmt{w.String(), args}
}

// Page selects page (1-based) of perPage rows ordered by created_at then
// id, plus one row to tell whether a next page exists.
func Page(f *Filter, accountID int64, desc bool, page, perPage int) Stmt {
	w := Where(f, accountID)
	dir := "DESC"
	if !desc {
		dir = "ASC"
	}
	sql := fmt.Sprintf(`SELECT %s FROM audits WHERE %s ORDER BY created_at %s, id %s LIMIT %d OFFSET %d`,
		columns, w.SQL, dir, dir, perPage+1, (page-1)*perPage)
	return Stmt{sql, w.Args}
}

// Count counts the matching rows, but stops at limit+1 so that counting a
// large account costs at most limit+1 index entries.
func Count(f *Filter, accountID int64, limit int) Stmt {
	w := Where(f, accountID)
	return Stmt{fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT 1 FROM audits WHERE %s LIMIT %d) AS capped`, w.SQL, limit+1), w.Args}
}

// Poll selects up to perPage rows after p in the polling stream, plus one
// row to tell whether more are ready. On PostgreSQL only rows of ended
// transactions are selected, so that no row committed later can sort
// before them.
func Poll(f *Filter, accountID int64, p Position, perPage int, postgres bool) Stmt {
	w := Where(f, accountID)
	sql := `SELECT ` + columns + ` FROM audits WHERE ` + w.SQL + ` AND (transaction_id, id) > (?, ?)`
	if postgres {
		sql += ` AND ` + finishedSQL
	}
	sql += fmt.Sprintf(` ORDER BY transaction_id, id LIMIT %d`, perPage+1)
	return Stmt{sql, append(w.Args, p.TxID, p.ID)}
}

// ErrNotInLog is returned by [PositionOf] for an id that is not a row of
// the account.
var ErrNotInLog = errors.New("httpapi: after_id is not a row of this account's log")

// PositionOf returns the stream position of the account's row id; id 0 is
// the start of the stream.
func PositionOf(ctx context.Context, db *gorm.DB, accountID, id int64) (Position, error) {
	if id == 0 {
		return Position{}, nil
	}
	var txids []int64
	err := db.WithContext(ctx).Raw(`SELECT transaction_id FROM audits WHERE account_id = ? AND id = ?`, accountID, id).Scan(&txids).Error
	if err != nil {
		return Position{}, fmt.Errorf("httpapi: resolve after_id: %w", err)
	}
	if len(txids) == 0 {
		return Position{}, ErrNotInLog
	}
	return Position{TxID: txids[0], ID: id}, nil
}

// End returns the position of the last row of the account's polling
// stream. Every row not yet in the stream sorts after it: on PostgreSQL
// such a row's transaction is at or above the snapshot's xmin, above every
// transaction id in the stream.
func End(ctx context.Context, db *gorm.DB, accountID int64, postgres bool) (Position, error) {
	sql := `SELECT transaction_id, id FROM audits WHERE account_id = ?`
	if postgres {
		sql += ` AND ` + finishedSQL
	}
	sql += ` ORDER BY transaction_id DESC, id DESC LIMIT 1`
	var ps []struct {
		TransactionID int64
		ID            int64
	}
	if err := db.WithContext(ctx).Raw(sql, accountID).Scan(&ps).Error; err != nil {
		return Position{}, err
	}
	if len(ps) == 0 {
		return Position{}, nil
	}
	return Position{TxID: ps[0].TransactionID, ID: ps[0].ID}, nil
}

// IsPostgres tells PostgreSQL from SQLite, the two supported databases;
// caller names the constructor in the error for any other.
func IsPostgres(db *gorm.DB, caller string) (bool, error) {
	switch name := db.Dialector.Name(); name {
	case "postgres":
		return true, nil
	case "sqlite":
		return false, nil
	default:
		return false, fmt.Errorf("%s: dialect %q is not supported (postgres, sqlite)", caller, name)
	}
}
