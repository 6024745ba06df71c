package httpapi

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// page is one response's rows and what the envelope says about them.
type page struct {
	rows      []json.RawMessage // encoded audit rows
	more      bool              // a further page exists, or more rows are ready
	truncated bool              // page mode: rows of the page were left out to stay under MaxPageBytes
	count     int64             // page mode: matching rows, at most countLimit
	exact     bool              // page mode: count is exact
	next      auditlist.Position
}

func (h *Handler) list(ctx context.Context, q *query, accountID int64) (*page, error) {
	var s auditlist.Stmt
	var from auditlist.Position
	if q.Polling() {
		if q.After != nil {
			from = *q.After
		} else {
			p, err := auditlist.PositionOf(ctx, h.db, accountID, *q.AfterID)
			if err != nil {
				return nil, err
			}
			from = p
		}
		s = auditlist.Poll(&q.Filter, accountID, from, q.PerPage, h.outOfOrder)
	} else {
		s = auditlist.Page(&q.Filter, accountID, q.Desc, q.Page, q.PerPage)
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
		c := auditlist.Count(&q.Filter, accountID, h.opts.CountLimit)
		if err := db.Raw(c.SQL, c.Args...).Scan(&pg.count).Error; err != nil {
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
func (h *Handler) readRows(ctx context.Context, s auditlist.Stmt, perPage int) (*page, *auditlist.Position, error) {
	rows, err := h.db.WithContext(ctx).Raw(s.SQL, s.Args...).Rows()
	if err != nil {
		return nil, nil, fmt.Errorf("httpapi: list audits: %w", err)
	}
	defer rows.Close()
	pg := &page{}
	var last *auditlist.Position
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
		last = &auditlist.Position{TxID: a.TransactionID, ID: a.ID}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("httpapi: list audits: %w", err)
	}
	return pg, last, nil
}
