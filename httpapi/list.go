package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

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

// list reads the page or poll q asks for, in one read transaction when
// Options.ReadClauses are set.
func (h *Handler) list(ctx context.Context, q *query, accountID int64) (*page, error) {
	if len(h.opts.ReadClauses) == 0 {
		return h.listOn(ctx, h.db.WithContext(ctx), q, accountID)
	}
	var pg *page
	err := auditlist.ReadTx(h.db.WithContext(ctx), h.opts.ReadClauses, func(tx *gorm.DB) error {
		var err error
		pg, err = h.listOn(ctx, tx, q, accountID)
		return err
	})
	return pg, err
}

// positionOf resolves after_id on db and, when it is not there and db may
// be a replica that has not replayed the row yet, on the primary: in a
// transaction begun on the handler's database, which gorm's dbresolver
// begins on the database's own connection.
func (h *Handler) positionOf(ctx context.Context, db *gorm.DB, accountID, id int64) (auditlist.Position, error) {
	p, err := auditlist.PositionOf(ctx, db, accountID, id)
	if !errors.Is(err, auditlist.ErrNotInLog) || len(h.opts.ReadClauses) == 0 {
		return p, err
	}
	err = h.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, err = auditlist.PositionOf(ctx, tx, accountID, id)
		return err
	})
	return p, err
}

func (h *Handler) listOn(ctx context.Context, db *gorm.DB, q *query, accountID int64) (*page, error) {
	var s auditlist.Stmt
	var from auditlist.Position
	if q.Polling() {
		if q.After != nil {
			from = *q.After
		} else {
			p, err := h.positionOf(ctx, db, accountID, *q.AfterID)
			if err != nil {
				return nil, err
			}
			from = p
		}
		s = auditlist.Poll(&q.Filter, accountID, from, q.PerPage, h.outOfOrder)
	} else {
		s = auditlist.Page(&q.Filter, accountID, q.Desc, q.Page, q.PerPage)
	}
	pg, last, err := h.readRows(db, s, q.PerPage)
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
func (h *Handler) readRows(db *gorm.DB, s auditlist.Stmt, perPage int) (*page, *auditlist.Position, error) {
	rows, err := db.Raw(s.SQL, s.Args...).Rows()
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
		if err := db.ScanRows(rows, &a); err != nil {
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
