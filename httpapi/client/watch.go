package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/httpapi/internal/backoff"
)

// PollResult is one read of the polling stream by [Client.Poll].
type PollResult struct {
	// Rows are the rows after the cursor, oldest first in the stream's
	// order.
	Rows []Row
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
// even while writes go on (see package httpapi, "Polling").
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
		Data   []Row           `json:"data"`
		Cursor *apitype.Cursor `json:"cursor"`
	}
	if err := c.get(ctx, v, &body); err != nil {
		return nil, err
	}
	if body.Cursor == nil || body.Cursor.Next == "" {
		return nil, errors.New("client: poll: response has no cursor")
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
func (c *Client) Watch(ctx context.Context, opts *WatchOptions, fn func(Row) error) error {
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
			wait = backoff.Exp(o.Interval, o.MaxBackoff, failures)
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
