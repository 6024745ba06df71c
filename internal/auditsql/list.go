package auditsql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// listColumns are the audit row's columns a list returns.
const listColumns = `id, account_id, auditable_id, auditable_type, associated_id, associated_type, user_id, user_type, ` +
	`action, audited_changes, version, comment, remote_address, request_uuid, created_at, transaction_id`

// finishedSQL restricts the polling stream to rows written by transactions
// that have ended: every transaction id below the snapshot's xmin has
// committed or aborted, and every row still to come will have a
// transaction id at or above it. Where the database commits in order
// (SQLite, whose transaction id is 0) no restriction is needed.
const finishedSQL = `transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// Position is a place in an account's polling stream, which is ordered by
// (transaction id, row id); the stream resumes after it. The zero value is
// the stream's start.
type Position struct {
	TxID int64
	ID   int64
}

// ListFilter narrows the rows an account's list reads. Empty fields select
// every value.
type ListFilter struct {
	// Types are the auditable types read when Type is empty.
	Types []string
	// Type and ID select one auditable type, and one record of it.
	Type, ID string
	// ParentType and ParentID select a record's own rows and the rows of
	// the records associated with it (a runbook and its steps).
	ParentType, ParentID string
	UserID               string
	Action               string
	// Since is inclusive, Until exclusive.
	Since, Until *time.Time
}

// Stmt is one SQL statement with its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// ListWhere is the WHERE clause shared by the page, count and polling
// statements: the account first, always, then f.
func ListWhere(f *ListFilter, accountID int64) Stmt {
	var w strings.Builder
	args := []any{accountID}
	if f.ID != "" || f.ParentID != "" {
		// The record's or runbook's own rows are a few entries of the
		// indexes on (type, id); the account is then only checked. As an
		// expression, account_id cannot lead the planner to read the
		// account's index instead, or beside them: a generic plan (the
		// driver prepares statements and reuses them with other values)
		// takes one account for 1/accounts of the rows, where a large
		// account holds half of them (EXPLAIN at 10^5 rows: 211 buffers
		// and 30 ms instead of 14 buffers and 1 ms).
		w.WriteString(`account_id + 0 = ?`)
	} else {
		w.WriteString(`account_id = ?`)
	}
	add := func(cond string, v ...any) {
		w.WriteString(` AND ` + cond)
		args = append(args, v...)
	}
	switch {
	case f.Type != "":
		add(`auditable_type = ?`, f.Type)
	case len(f.Types) > 0:
		add(`auditable_type IN ?`, f.Types)
	}
	if f.ID != "" {
		add(`auditable_id = ?`, f.ID)
	}
	if f.ParentID != "" {
		add(`((auditable_type = ? AND auditable_id = ?) OR (associated_type = ? AND associated_id = ?))`,
			f.ParentType, f.ParentID, f.ParentType, f.ParentID)
	}
	if f.UserID != "" {
		add(`user_id = ?`, f.UserID)
	}
	if f.Action != "" {
		add(`action = ?`, f.Action)
	}
	if f.Since != nil {
		add(`created_at >= ?`, *f.Since)
	}
	if f.Until != nil {
		add(`created_at < ?`, *f.Until)
	}
	return Stmt{w.String(), args}
}

// ListPage selects page (1-based) of perPage rows ordered by created_at
// then id, plus one row to tell whether a next page exists.
func ListPage(f *ListFilter, accountID int64, desc bool, page, perPage int) Stmt {
	w := ListWhere(f, accountID)
	dir := "DESC"
	if !desc {
		dir = "ASC"
	}
	sql := fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY created_at %s, id %s LIMIT %d OFFSET %d`,
		listColumns, Table, w.SQL, dir, dir, perPage+1, (page-1)*perPage)
	return Stmt{sql, w.Args}
}

// ListCount counts the matching rows, but stops at limit+1 so that counting
// a large account costs at most limit+1 index entries.
func ListCount(f *ListFilter, accountID int64, limit int) Stmt {
	w := ListWhere(f, accountID)
	return Stmt{fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT 1 FROM %s WHERE %s LIMIT %d) AS capped`, Table, w.SQL, limit+1), w.Args}
}

// ListPoll selects up to perPage rows after p in the polling stream, plus
// one row to tell whether more are ready. Where transactions commit out of
// order (outOfOrder, see dialect.Dialect.CommitsOutOfOrder) only rows of
// ended transactions are selected, so that no row committed later can sort
// before them.
func ListPoll(f *ListFilter, accountID int64, p Position, perPage int, outOfOrder bool) Stmt {
	w := ListWhere(f, accountID)
	sql := `SELECT ` + listColumns + ` FROM ` + Table + ` WHERE ` + w.SQL + ` AND (transaction_id, id) > (?, ?)`
	if outOfOrder {
		sql += ` AND ` + finishedSQL
	}
	sql += fmt.Sprintf(` ORDER BY transaction_id, id LIMIT %d`, perPage+1)
	return Stmt{sql, append(w.Args, p.TxID, p.ID)}
}

// ListPositionOf returns the stream position of the account's row id (id 0
// is the start of the stream); found is false when id is not a row of the
// account.
func ListPositionOf(ctx context.Context, db *gorm.DB, accountID, id int64) (p Position, found bool, err error) {
	if id == 0 {
		return Position{}, true, nil
	}
	var txids []int64
	err = db.WithContext(ctx).Raw(`SELECT transaction_id FROM `+Table+` WHERE account_id = ? AND id = ?`, accountID, id).Scan(&txids).Error
	if err != nil || len(txids) == 0 {
		return Position{}, false, err
	}
	return Position{TxID: txids[0], ID: id}, true, nil
}

// ListEnd returns the position of the last row of the account's polling
// stream. Every row not yet in the stream sorts after it: where
// transactions commit out of order, such a row's transaction is at or
// above the snapshot's xmin, above every transaction id in the stream.
func ListEnd(ctx context.Context, db *gorm.DB, accountID int64, outOfOrder bool) (Position, error) {
	sql := `SELECT transaction_id, id FROM ` + Table + ` WHERE account_id = ?`
	if outOfOrder {
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

// ReadTx runs fn in one read-only REPEATABLE READ transaction, so that every
// statement of fn reads one snapshot of one server. The transaction is
// begun on db.Clauses(read...) by a statement naming the audits table: a
// router of reads to replicas, such as gorm's dbresolver plugin (even one
// registered for the audits table only), begins it on a replica when read
// holds its read clause (dbresolver.Read). With no clause it begins where
// db begins transactions.
func ReadTx(db *gorm.DB, read []clause.Expression, fn func(tx *gorm.DB) error) error {
	return db.Table(Table).Clauses(read...).Transaction(func(tx *gorm.DB) error {
		return fn(tx.Session(&gorm.Session{NewDB: true}))
	}, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
}
