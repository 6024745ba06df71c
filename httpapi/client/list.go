package client

import (
	"context"
	"errors"
	"iter"
	"net/url"
	"strconv"
	"time"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
)

// Filters narrow the rows read. The zero value reads every row of the
// token's account.
type Filters struct {
	// AuditableType is "Runbooks::Runbook" or "Runbooks::Step". Defaults to
	// the server's choice: for [Client.List] and [Client.All] without
	// AuditableID or RunbookID, Runbooks::Step on a default httpapi.Handler
	// (as on the hosted endpoint); otherwise, and for polling, both types.
	AuditableType string
	// AuditableID is one record's id. Defaults to every record.
	AuditableID string
	// RunbookID selects a runbook's own rows and all of its steps' rows.
	// Defaults to every runbook.
	RunbookID string
	// UserID is the actor's id. Defaults to every actor.
	UserID string
	// Action is create, update or destroy. Defaults to all three.
	Action Action
	// Since is the earliest created_at, inclusive. Defaults to no bound.
	Since time.Time
	// Until is the created_at the rows are before, exclusive. Defaults to
	// no bound.
	Until time.Time
}

func (f *Filters) encode(v url.Values) {
	if f == nil {
		return
	}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("auditable_type", f.AuditableType)
	set("auditable_id", f.AuditableID)
	set("runbook_id", f.RunbookID)
	set("user_id", f.UserID)
	set("action", string(f.Action))
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
}

// ListOptions selects one page for [Client.List] and the first page for
// [Client.All]. A nil *ListOptions means every default.
type ListOptions struct {
	Filters
	// Page is the 1-based page number. Defaults to 1.
	Page int
	// PerPage is the number of rows per page, at most the server's maximum
	// (100 by default). Defaults to the server's default (20 by default).
	PerPage int
	// Ascending orders the rows oldest first. Defaults to false: newest
	// first.
	Ascending bool
}

// Pagination describes a page of [Client.List], as the endpoint reports it.
// A page cut short by the server's byte cap (Truncated) is completed by
// [Client.All]; [Client.Poll] and [Client.Watch] have no such gap, their
// cursor resuming right after the last row received.
type Pagination = apitype.Pagination

// Page is one page of rows read by [Client.List].
type Page struct {
	Rows       []Row
	Pagination Pagination
}

// List reads one page of the audit log.
func (c *Client) List(ctx context.Context, opts *ListOptions) (*Page, error) {
	if opts == nil {
		opts = &ListOptions{}
	}
	v := url.Values{}
	opts.Filters.encode(v)
	if opts.Page != 0 {
		v.Set("page", strconv.Itoa(opts.Page))
	}
	if opts.PerPage != 0 {
		v.Set("per_page", strconv.Itoa(opts.PerPage))
	}
	if opts.Ascending {
		v.Set("sort", "asc")
	}
	var body struct {
		Data       []Row       `json:"data"`
		Pagination *Pagination `json:"pagination"`
	}
	if err := c.get(ctx, v, &body); err != nil {
		return nil, err
	}
	if body.Pagination == nil {
		return nil, errors.New("client: list: response has no pagination")
	}
	return &Page{Rows: body.Data, Pagination: *body.Pagination}, nil
}

// All reads every page from opts.Page on, following pagination.next, and
// yields their rows in order. A page the server cut short to stay under its
// byte cap is completed by reading its missing rows one at a time (a page
// of one row is never cut). It stops at the first error, which it yields
// with a zero row. Pages are read by number, so rows written while All runs
// can shift them (newest first, a new row pushes one onto the next page and
// it is yielded twice); to read a log that grows, and each row once, use
// [Client.Watch]. The server bounds how deep page numbers go
// (httpapi.Options.MaxOffset).
func (c *Client) All(ctx context.Context, opts *ListOptions) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		o := ListOptions{}
		if opts != nil {
			o = *opts
		}
		for {
			p, err := c.List(ctx, &o)
			if err != nil {
				yield(Row{}, err)
				return
			}
			for _, r := range p.Rows {
				if !yield(r, nil) {
					return
				}
			}
			if p.Pagination.Truncated && !c.rest(ctx, o, p.Pagination, yield) {
				return
			}
			if p.Pagination.Next == nil {
				return
			}
			o.Page = *p.Pagination.Next
		}
	}
}

// rest yields the rows cut from page pg, read as pages of one row, and
// reports whether All should go on.
func (c *Client) rest(ctx context.Context, o ListOptions, pg Pagination, yield func(Row, error) bool) bool {
	first := (pg.Page-1)*pg.PerPage + pg.Items // 0-based offset of the first row cut
	for off := first; off < pg.Page*pg.PerPage; off++ {
		o.Page, o.PerPage = off+1, 1
		one, err := c.List(ctx, &o)
		if err != nil {
			yield(Row{}, err)
			return false
		}
		if len(one.Rows) == 0 {
			return true // the page ended early: rows were deleted meanwhile
		}
		if !yield(one.Rows[0], nil) {
			return false
		}
	}
	return true
}
