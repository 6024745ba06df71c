package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// columns are the audit row's columns the endpoint returns.
const columns = `id, account_id, auditable_id, auditable_type, associated_id, associated_type, user_id, user_type, ` +
	`action, audited_changes, version, comment, remote_address, request_uuid, created_at, transaction_id`

// finishedSQL restricts the polling stream to rows written by transactions
// that have ended: every transaction id below the snapshot's xmin has
// committed or aborted, and every row still to come will have a
// transaction id at or above it. On SQLite the transaction id is 0 and the
// single writer commits ids in order, so no restriction is needed.
const finishedSQL = `transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// stmt is one SQL statement with its arguments.
type stmt struct {
	sql  string
	args []any
}

// filter is the WHERE clause shared by the page and the polling queries:
// the caller's account first, always, then the request's filters.
func filter(q *query, accountID int64) stmt {
	var w strings.Builder
	args := []any{accountID}
	w.WriteString(`account_id = ?`)
	if q.AuditableType != "" {
		w.WriteString(` AND auditable_type = ?`)
		args = append(args, q.AuditableType)
	} else {
		w.WriteString(` AND auditable_type IN (?, ?)`)
		args = append(args, auditableTypes[0], auditableTypes[1])
	}
	if q.AuditableID != "" {
		w.WriteString(` AND auditable_id = ?`)
		args = append(args, q.AuditableID)
	}
	if q.RunbookID != "" {
		// The runbook's own rows, and its steps' rows (associated with it).
		w.WriteString(` AND ((auditable_type = ? AND auditable_id = ?) OR (associated_type = ? AND associated_id = ?))`)
		args = append(args, runbooks.TypeRunbook, q.RunbookID, runbooks.TypeRunbook, q.RunbookID)
	}
	if q.UserID != "" {
		w.WriteString(` AND user_id = ?`)
		args = append(args, q.UserID)
	}
	if q.Action != "" {
		w.WriteString(` AND action = ?`)
		args = append(args, string(q.Action))
	}
	if q.Since != nil {
		w.WriteString(` AND created_at >= ?`)
		args = append(args, *q.Since)
	}
	if q.Until != nil {
		w.WriteString(` AND created_at < ?`)
		args = append(args, *q.Until)
	}
	return stmt{w.String(), args}
}

// pageStmt selects one page, plus one row to tell whether a next page
// exists.
func pageStmt(q *query, accountID int64) stmt {
	f := filter(q, accountID)
	dir := "DESC"
	if !q.Desc {
		dir = "ASC"
	}
	sql := fmt.Sprintf(`SELECT %s FROM audits WHERE %s ORDER BY created_at %s, id %s LIMIT %d OFFSET %d`,
		columns, f.sql, dir, dir, q.PerPage+1, (q.Page-1)*q.PerPage)
	return stmt{sql, f.args}
}

// countStmt counts the matching rows, but stops at limit+1 so that counting
// a large account costs at most limit+1 index entries.
func countStmt(q *query, accountID int64, limit int) stmt {
	f := filter(q, accountID)
	return stmt{fmt.Sprintf(`SELECT COUNT(*) FROM (SELECT 1 FROM audits WHERE %s LIMIT %d) AS capped`, f.sql, limit+1), f.args}
}

// pollStmt selects the rows after p in the polling stream, plus one row to
// tell whether more are ready.
func pollStmt(q *query, accountID int64, p position, postgres bool) stmt {
	f := filter(q, accountID)
	sql := `SELECT ` + columns + ` FROM audits WHERE ` + f.sql + ` AND (transaction_id, id) > (?, ?)`
	if postgres {
		sql += ` AND ` + finishedSQL
	}
	sql += fmt.Sprintf(` ORDER BY transaction_id, id LIMIT %d`, q.PerPage+1)
	return stmt{sql, append(f.args, p.TxID, p.ID)}
}

// errAfterIDUnknown is returned by resolveAfterID for an id that is not a
// row of the account.
var errAfterIDUnknown = errors.New("httpapi: after_id is not a row of this account's log")

// resolveAfterID turns after_id=N into a stream position: the place of row
// N. 0 is the start of the stream. The row must be one of the account's.
// When N came from the stream (cursor.next_after_id), resuming after it
// skips nothing; an id learnt elsewhere, such as from a page, is accepted
// too, but rows of transactions that were still open then may sort before
// it and are not returned.
func resolveAfterID(ctx context.Context, db *gorm.DB, accountID, id int64) (position, error) {
	if id == 0 {
		return position{}, nil
	}
	var txids []int64
	err := db.WithContext(ctx).Raw(`SELECT transaction_id FROM audits WHERE account_id = ? AND id = ?`, accountID, id).Scan(&txids).Error
	if err != nil {
		return position{}, fmt.Errorf("httpapi: resolve after_id: %w", err)
	}
	if len(txids) == 0 {
		return position{}, errAfterIDUnknown
	}
	return position{TxID: txids[0], ID: id}, nil
}

// page is one response's rows and what the envelope says about them.
type page struct {
	rows      []json.RawMessage // encoded audit rows
	more      bool              // a further page exists, or more rows are ready
	truncated bool              // page mode: rows of the page were left out to stay under MaxPageBytes
	count     int64             // page mode: matching rows, at most countLimit
	exact     bool              // page mode: count is exact
	next      position
}

func (h *Handler) list(ctx context.Context, q *query, accountID int64) (*page, error) {
	var s stmt
	var from position
	if q.Polling() {
		from = position{}
		if q.After != nil {
			from = *q.After
		} else {
			p, err := resolveAfterID(ctx, h.db, accountID, *q.AfterID)
			if err != nil {
				return nil, err
			}
			from = p
		}
		s = pollStmt(q, accountID, from, h.postgres)
	} else {
		s = pageStmt(q, accountID)
	}
	pg, last, err := h.readRows(ctx, s, q.PerPage)
	if err != nil {
		return nil, err
	}
	if q.Polling() {
		pg.next = from
		if last != nil {
			pg.next = *last
		}
		pg.more = pg.more || pg.truncated
		pg.truncated = false
		return pg, nil
	}
	db := h.db.WithContext(ctx)
	switch {
	case q.Page == 1 && !pg.more && !pg.truncated:
		// The whole result is on this page: no need to count.
		pg.count, pg.exact = int64(len(pg.rows)), true
	default:
		c := countStmt(q, accountID, h.opts.CountLimit)
		if err := db.Raw(c.sql, c.args...).Scan(&pg.count).Error; err != nil {
			return nil, fmt.Errorf("httpapi: count audits: %w", err)
		}
		pg.exact = pg.count <= int64(h.opts.CountLimit)
		if !pg.exact {
			pg.count = int64(h.opts.CountLimit)
		}
	}
	if pg.truncated {
		// The rows after the cut were not read: the count tells whether
		// a next page exists.
		pg.more = !pg.exact || int64(q.Page)*int64(q.PerPage) < pg.count
	}
	return pg, nil
}

// readRows runs s, which selects up to perPage+1 rows, and encodes up to
// perPage of them, stopping before the row that would take the encoded
// rows past MaxPageBytes (the first row is always kept). Rows are read one
// at a time, so that memory stays bounded by the cap and one row. It
// returns the stream position of the last row kept, or nil when none was.
func (h *Handler) readRows(ctx context.Context, s stmt, perPage int) (*page, *position, error) {
	rows, err := h.db.WithContext(ctx).Raw(s.sql, s.args...).Rows()
	if err != nil {
		return nil, nil, fmt.Errorf("httpapi: list audits: %w", err)
	}
	defer rows.Close()
	pg := &page{}
	var last *position
	size := 0
	for rows.Next() {
		if len(pg.rows) == perPage {
			pg.more = true
			break
		}
		var a audit.Audit
		if err := h.db.ScanRows(rows, &a); err != nil {
			return nil, nil, fmt.Errorf("httpapi: list audits: %w", err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, nil, fmt.Errorf("httpapi: encode audit %d: %w", a.ID, err)
		}
		if len(pg.rows) > 0 && size+len(b)+1 > h.opts.MaxPageBytes {
			pg.truncated = true
			break
		}
		size += len(b) + 1 // and a comma
		pg.rows = append(pg.rows, b)
		last = &position{TxID: a.TransactionID, ID: a.ID}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("httpapi: list audits: %w", err)
	}
	return pg, last, nil
}
