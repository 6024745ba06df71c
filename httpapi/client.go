package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gormaudit/gormaudit/audit"
)

// Client reads the runbook audit endpoint of a [Handler] over HTTP with a
// bot token. Create it with [NewClient]; it is safe for concurrent use.
type Client struct {
	endpoint *url.URL
	token    string
	hc       *http.Client
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithHTTPClient makes the client send its requests with hc. Defaults to a
// client with a 30 second timeout.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.hc = hc }
}

// NewClient returns a client of the endpoint at endpoint, the full URL the
// handler is mounted at (such as "https://example.com/v1/runbook_audits"),
// authenticating with the bot token. The token is sent only in the
// Authorization header and never appears in errors.
func NewClient(endpoint, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("httpapi: NewClient: endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("httpapi: NewClient: endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("httpapi: NewClient: endpoint %q must have no query or fragment", endpoint)
	}
	if token == "" {
		return nil, errors.New("httpapi: NewClient: token is empty")
	}
	c := &Client{endpoint: u, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		return nil, errors.New("httpapi: NewClient: WithHTTPClient(nil)")
	}
	return c, nil
}

// Filters narrow the rows read. The zero value reads every row of the
// token's account.
type Filters struct {
	// AuditableType is "Runbooks::Runbook" or "Runbooks::Step". Defaults to
	// the server's choice: for [Client.List] and [Client.All] without
	// AuditableID or RunbookID, Runbooks::Step on a default [Handler] (as
	// on the hosted endpoint); otherwise, and for polling, both types.
	AuditableType string
	// AuditableID is one record's id. Defaults to every record.
	AuditableID string
	// RunbookID selects a runbook's own rows and all of its steps' rows.
	// Defaults to every runbook.
	RunbookID string
	// UserID is the actor's id. Defaults to every actor.
	UserID string
	// Action is create, update or destroy. Defaults to all three.
	Action audit.Action
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
type Pagination struct {
	// Count is the number of matching rows, capped by the server's count
	// limit when CountExact is false.
	Count      int64 `json:"count"`
	CountExact bool  `json:"count_exact"`
	// Page is this page's number, PerPage the page size it was read
	// with, and Items the rows on it.
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Items   int `json:"items"`
	// Pages and Last are the number of the last page.
	Pages int64 `json:"pages"`
	Last  int64 `json:"last"`
	// Prev and Next are the neighbouring page numbers, nil at the ends.
	Prev *int `json:"prev"`
	Next *int `json:"next"`
	// Truncated is true when rows of the page were left out to keep the
	// response under the server's byte cap (Items is then below PerPage);
	// page numbers keep their meaning, so the next page does not hold
	// them. [Client.All] reads them one by one; [Client.Poll] and
	// [Client.Watch] have no such gap, their cursor resuming right after
	// the last row received.
	Truncated bool `json:"truncated,omitempty"`
}

// Page is one page of rows read by [Client.List].
type Page struct {
	Rows       []audit.Audit
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
		Data       []audit.Audit `json:"data"`
		Pagination *Pagination   `json:"pagination"`
	}
	if err := c.get(ctx, v, &body); err != nil {
		return nil, err
	}
	if body.Pagination == nil {
		return nil, errors.New("httpapi: list: response has no pagination")
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
// ([Options.MaxOffset]).
func (c *Client) All(ctx context.Context, opts *ListOptions) iter.Seq2[audit.Audit, error] {
	return func(yield func(audit.Audit, error) bool) {
		o := ListOptions{}
		if opts != nil {
			o = *opts
		}
		for {
			p, err := c.List(ctx, &o)
			if err != nil {
				yield(audit.Audit{}, err)
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
func (c *Client) rest(ctx context.Context, o ListOptions, pg Pagination, yield func(audit.Audit, error) bool) bool {
	first := (pg.Page-1)*pg.PerPage + pg.Items // 0-based offset of the first row cut
	for off := first; off < pg.Page*pg.PerPage; off++ {
		o.Page, o.PerPage = off+1, 1
		one, err := c.List(ctx, &o)
		if err != nil {
			yield(audit.Audit{}, err)
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

// PollResult is one read of the polling stream by [Client.Poll].
type PollResult struct {
	// Rows are the rows after the cursor, oldest first in the stream's
	// order.
	Rows []audit.Audit
	// Cursor resumes the stream after Rows. It is opaque: store it and
	// send it back. When Rows is empty it is the cursor that was sent (or
	// the stream's start).
	Cursor string
	// More is true when more rows are ready now.
	More bool
}

// Poll reads the rows after cursor in the polling stream, at most perPage of
// them (0 for the server's default). An empty cursor is the start of the
// log. Rows are never skipped nor repeated from one cursor to the next,
// even while writes go on (see the package documentation, "Polling").
func (c *Client) Poll(ctx context.Context, cursor string, f *Filters, perPage int) (*PollResult, error) {
	v := url.Values{}
	f.encode(v)
	if cursor == "" {
		v.Set("after_id", "0")
	} else {
		v.Set("cursor", cursor)
	}
	if perPage != 0 {
		v.Set("per_page", strconv.Itoa(perPage))
	}
	var body struct {
		Data   []audit.Audit `json:"data"`
		Cursor *struct {
			Next string `json:"next"`
			More bool   `json:"more"`
		} `json:"cursor"`
	}
	if err := c.get(ctx, v, &body); err != nil {
		return nil, err
	}
	if body.Cursor == nil || body.Cursor.Next == "" {
		return nil, errors.New("httpapi: poll: response has no cursor")
	}
	return &PollResult{Rows: body.Data, Cursor: body.Cursor.Next, More: body.Cursor.More}, nil
}

// WatchOptions configures [Client.Watch]. A nil *WatchOptions means every
// default.
type WatchOptions struct {
	Filters
	// Cursor is where to resume: a cursor saved by Checkpoint. Defaults to
	// "", the start of the log.
	Cursor string
	// PerPage is the number of rows read per request. Defaults to 100.
	PerPage int
	// Interval is how long Watch waits before polling again once it has
	// read everything that is ready. Defaults to 5 seconds.
	Interval time.Duration
	// MaxBackoff bounds the wait between retries after a failed request
	// (a network error or a 5xx), which doubles from Interval. Defaults to
	// one minute.
	MaxBackoff time.Duration
	// Checkpoint, when set, is called with the new cursor after every row
	// of a response was handed to fn without error. Save the cursor there
	// and resume from it with Cursor. If Checkpoint returns an error,
	// Watch returns it. Defaults to nil.
	Checkpoint func(ctx context.Context, cursor string) error
}

// Watch follows the polling stream from opts.Cursor until ctx is done, and
// hands each new row to fn exactly once, in the stream's order. It waits
// opts.Interval when nothing is ready and retries failed requests with
// exponential backoff; a 4xx response ends it with an [*APIError]. It
// returns fn's or Checkpoint's first error, or ctx's error when ctx is done.
//
// Across restarts, a row is handed to fn again only if Watch stopped after
// fn handled it and before the cursor after it was checkpointed; a handler
// that must see each row once even then records the cursor in the same
// transaction as its own effect, or sets PerPage to 1.
func (c *Client) Watch(ctx context.Context, opts *WatchOptions, fn func(audit.Audit) error) error {
	o := WatchOptions{}
	if opts != nil {
		o = *opts
	}
	if o.PerPage == 0 {
		o.PerPage = 100
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	cursor := o.Cursor
	wait := time.Duration(0)
	failures := 0
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := c.Poll(ctx, cursor, &o.Filters, o.PerPage)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if ae, ok := asAPIError(err); ok && ae.StatusCode < 500 && ae.StatusCode != http.StatusTooManyRequests {
				return err
			}
			wait = backoff(o.Interval, o.MaxBackoff, failures)
			failures++
			continue
		}
		failures = 0
		for _, r := range res.Rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		if res.Cursor != cursor {
			cursor = res.Cursor
			if o.Checkpoint != nil {
				if err := o.Checkpoint(ctx, cursor); err != nil {
					return err
				}
			}
		}
		wait = 0
		if !res.More {
			wait = o.Interval
		}
	}
}

// backoff returns base doubled n times, at most limit.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for range n {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// APIError is a response of the endpoint other than 200, with its JSON
// error body ([ErrorBody]).
type APIError struct {
	// StatusCode is the HTTP status, such as 400 or 503.
	StatusCode int
	// Code is the error body's machine-readable code, such as
	// "invalid_parameter", or "" when the body was not the endpoint's JSON
	// error.
	Code string
	// Message is the error body's text for people.
	Message string
	// Parameter names the offending query parameter of a 400.
	Parameter string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("httpapi: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("httpapi: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// decodeAPIError reads an error body: the current [ErrorBody], or the
// {"error": {"code", "message", "parameter"}} of earlier versions of the
// endpoint.
func decodeAPIError(status int, b []byte) *APIError {
	ae := &APIError{StatusCode: status}
	var body struct {
		ErrorBody
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ae
	}
	var legacy struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Parameter string `json:"parameter"`
	}
	if len(body.Error) > 0 && body.Error[0] == '{' && json.Unmarshal(body.Error, &legacy) == nil {
		ae.Code, ae.Message, ae.Parameter = legacy.Code, legacy.Message, legacy.Parameter
		return ae
	}
	ae.Code, ae.Message, ae.Parameter = body.Code, body.Message, body.Parameter
	return ae
}

// maxResponse bounds a response body read by the client.
const maxResponse = 64 << 20

func (c *Client) get(ctx context.Context, v url.Values, out any) error {
	u := *c.endpoint
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("httpapi: GET %s: %w", c.endpoint.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("httpapi: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("httpapi: response is %q, not JSON", ct)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("httpapi: decode response: %w", err)
	}
	return nil
}

// asAPIError is errors.As for *APIError, as an expression.
func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}
