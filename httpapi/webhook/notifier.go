package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
	"github.com/gormaudit/gormaudit/httpapi/internal/backoff"
)

// NotifierOptions configures a [Notifier]. The zero value, like a nil
// *NotifierOptions, means every default.
type NotifierOptions struct {
	// HTTPClient sends the deliveries. Defaults to a client with a 10
	// second timeout that does not follow redirects (a redirect is not a
	// delivery) nor use a proxy and, unless AllowPrivateNetworks is set,
	// refuses to connect to an address that is not public (see
	// [ErrForbiddenAddress]), checked at every connection, after DNS
	// resolution. A client given here is used as is; unless
	// AllowPrivateNetworks is set, the URL's host is still resolved and
	// checked before each attempt, but a host whose DNS answer changes
	// between that check and the connection is only caught by the
	// default client.
	HTTPClient *http.Client
	// AllowPrivateNetworks lets deliveries reach loopback, private,
	// link-local, multicast, shared and unspecified addresses. Defaults to
	// false: a webhook URL is supplied by a customer, and must not reach
	// the service's own network or its cloud's metadata endpoint.
	AllowPrivateNetworks bool
	// PollInterval is how often a subscriber that has received everything
	// looks for new rows, and how often the list of subscribers is read
	// again. Defaults to 1 second.
	PollInterval time.Duration
	// BatchSize is the number of rows read from the database at a time
	// for one subscriber. Defaults to 100.
	BatchSize int
	// RetryBase is the wait after a first failed attempt; it doubles with
	// each further failure of the same row, up to RetryMax, with jitter.
	// Defaults to 1 second.
	RetryBase time.Duration
	// RetryMax bounds the wait between attempts. A row is retried until it
	// is delivered: nothing is dropped. Defaults to 10 minutes.
	RetryMax time.Duration
	// Logger receives failed attempts and database errors. It never
	// receives secrets, nor URLs beyond their host (webhook URLs often
	// carry a token in their path). Defaults to slog.Default().
	Logger *slog.Logger

	// guardedByClient is set when HTTPClient is the default client that
	// checks addresses at connection time.
	guardedByClient bool
}

func (o *NotifierOptions) withDefaults() (NotifierOptions, error) {
	var v NotifierOptions
	if o != nil {
		v = *o
	}
	v.guardedByClient = false
	switch {
	case v.HTTPClient != nil:
	case v.AllowPrivateNetworks:
		v.HTTPClient = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	default:
		v.HTTPClient = guardedClient(10 * time.Second)
		v.guardedByClient = true
	}
	if v.PollInterval == 0 {
		v.PollInterval = time.Second
	}
	if v.BatchSize == 0 {
		v.BatchSize = 100
	}
	if v.RetryBase == 0 {
		v.RetryBase = time.Second
	}
	if v.RetryMax == 0 {
		v.RetryMax = 10 * time.Minute
	}
	if v.Logger == nil {
		v.Logger = slog.Default()
	}
	switch {
	case v.PollInterval < 0:
		return v, fmt.Errorf("webhook: NotifierOptions.PollInterval must be positive, not %s", v.PollInterval)
	case v.BatchSize < 1 || v.BatchSize > 1000:
		return v, fmt.Errorf("webhook: NotifierOptions.BatchSize must be from 1 to 1000, not %d", v.BatchSize)
	case v.RetryBase < 0:
		return v, fmt.Errorf("webhook: NotifierOptions.RetryBase must be positive, not %s", v.RetryBase)
	case v.RetryMax < v.RetryBase:
		return v, fmt.Errorf("webhook: NotifierOptions.RetryMax (%s) must be at least RetryBase (%s)", v.RetryMax, v.RetryBase)
	}
	return v, nil
}

// Notifier delivers new audit rows to the webhook subscribers stored by
// [AddSubscriber]: each row that matches a subscriber's filters becomes a
// signed POST (see [HeaderSignature]), retried with exponential backoff
// until the receiver answers 2xx. Deliveries to one subscriber are made one
// at a time in the order of the polling stream (see package httpapi,
// "Polling"), and the subscriber's cursor in the database moves past a
// row only after its 2xx, so that a notifier that stops, crashes or is
// restarted resumes at the first row not acknowledged: at least once, in
// order, nothing lost. The row in flight when it stopped is delivered
// again, with the same [HeaderDelivery].
//
// Run one Notifier per database. A second one is safe (a subscriber's
// cursor only moves forward, compare-and-set) but delivers rows twice.
type Notifier struct {
	db         *gorm.DB
	opts       NotifierOptions
	outOfOrder bool // the database commits out of order: poll below the oldest running transaction
	log        *slog.Logger

	// caughtUp, when set (by tests), is called each time a subscriber's
	// worker has found no row to deliver after its cursor.
	caughtUp func(subscriberID int64)
}

// NewNotifier returns a notifier reading db, which must hold the tables of
// audit.Migrate and [Migrate]. A nil opts means the defaults.
func NewNotifier(db *gorm.DB, opts *NotifierOptions) (*Notifier, error) {
	if db == nil {
		return nil, errors.New("webhook: NewNotifier: db is nil")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	pg, err := auditlist.OutOfOrder(db, "webhook: NewNotifier")
	if err != nil {
		return nil, err
	}
	return &Notifier{db: db, opts: o, outOfOrder: pg, log: o.Logger}, nil
}

// Run delivers until ctx is done, then stops every delivery in flight and
// returns nil. Subscribers added or deleted while it runs are picked up
// within PollInterval. Database and delivery errors are logged and
// retried; they do not end Run.
func (n *Notifier) Run(ctx context.Context) error {
	type worker struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[int64]*worker{}
	var wg sync.WaitGroup
	defer func() {
		for _, w := range workers {
			w.cancel()
		}
		wg.Wait()
	}()
	for {
		var ids []int64
		err := n.db.WithContext(ctx).Model(&Subscriber{}).Order("id").Pluck("id", &ids).Error
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: list subscribers", slog.String("error", err.Error()))
		default:
			live := make(map[int64]bool, len(ids))
			for _, id := range ids {
				live[id] = true
				if w, ok := workers[id]; ok {
					select {
					case <-w.done: // ended on its own: start it again
					default:
						continue
					}
				}
				wctx, cancel := context.WithCancel(ctx)
				w := &worker{cancel: cancel, done: make(chan struct{})}
				workers[id] = w
				wg.Go(func() {
					defer close(w.done)
					n.work(wctx, id)
				})
			}
			for id, w := range workers {
				if !live[id] {
					w.cancel()
					delete(workers, id)
				}
			}
		}
		if !sleep(ctx, n.opts.PollInterval) {
			return nil
		}
	}
}

// sleep waits d or until ctx is done, and reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryWait is the wait before attempt n+1 (n ≥ 1 failures so far): the
// backoff, with its upper half drawn at random so that many subscribers do
// not retry in step.
func (n *Notifier) retryWait(failures int) time.Duration {
	d := backoff.Exp(n.opts.RetryBase, n.opts.RetryMax, failures-1)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// work delivers to one subscriber until ctx is done or the subscriber is
// deleted.
func (n *Notifier) work(ctx context.Context, id int64) {
	dbFailures := 0
	dbError := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		dbFailures++
		n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: "+what,
			slog.Int64("subscriber_id", id), slog.String("error", err.Error()))
		return sleep(ctx, n.retryWait(dbFailures))
	}
	for ctx.Err() == nil {
		sub, found, err := n.load(ctx, id)
		if err != nil {
			if !dbError("load subscriber", err) {
				return
			}
			continue
		}
		if !found {
			return
		}
		rows, err := n.next(ctx, &sub)
		if err != nil {
			if !dbError("read audits", err) {
				return
			}
			continue
		}
		dbFailures = 0
		if len(rows) == 0 {
			if n.caughtUp != nil {
				n.caughtUp(id)
			}
			if !sleep(ctx, n.opts.PollInterval) {
				return
			}
			continue
		}
		for _, r := range rows {
			ok, err := n.deliver(ctx, &sub, r)
			if err != nil {
				if !dbError("advance cursor", err) {
					return
				}
				break
			}
			if !ok {
				// Stopped, deleted, or moved by another notifier:
				// read the subscriber again.
				break
			}
		}
	}
}

// load reads the subscriber.
func (n *Notifier) load(ctx context.Context, id int64) (Subscriber, bool, error) {
	var subs []Subscriber
	if err := n.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&subs).Error; err != nil {
		return Subscriber{}, false, err
	}
	if len(subs) == 0 {
		return Subscriber{}, false, nil
	}
	return subs[0], true, nil
}

// next reads the rows after the subscriber's cursor that match its
// filters, with the endpoint's polling statement: only rows that can no
// longer be preceded by a row committed later.
func (n *Notifier) next(ctx context.Context, sub *Subscriber) ([]audit.Audit, error) {
	f := auditlist.Filter{AuditableType: sub.AuditableType, RunbookID: sub.RunbookID, Action: sub.Action}
	s := auditlist.Poll(&f, sub.AccountID, sub.position(), n.opts.BatchSize, n.outOfOrder)
	var rows []audit.Audit
	if err := n.db.WithContext(ctx).Raw(s.SQL, s.Args...).Scan(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) > n.opts.BatchSize {
		rows = rows[:n.opts.BatchSize]
	}
	return rows, nil
}

// deliver posts row to sub until a 2xx, then moves sub's cursor past it.
// It returns false without error when ctx ended or sub was deleted or moved
// meanwhile, and an error when the cursor could not be stored.
func (n *Notifier) deliver(ctx context.Context, sub *Subscriber, row audit.Audit) (bool, error) {
	body, err := json.Marshal(Event{SubscriberID: sub.ID, Audit: row})
	if err != nil {
		return false, fmt.Errorf("encode row %d: %w", row.ID, err)
	}
	from := sub.position()
	for failures := sub.Failures; ; {
		if failures > 0 && !sleep(ctx, n.retryWait(failures)) {
			return false, nil
		}
		if failures > 0 {
			// The URL or secret may have been fixed, or the subscriber
			// deleted, while the receiver was failing.
			cur, found, err := n.load(ctx, sub.ID)
			if err != nil {
				return false, err
			}
			if !found || cur.position() != from {
				return false, nil
			}
			*sub = cur
		}
		err := n.post(ctx, sub, row.ID, body)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false, nil
		}
		failures++
		msg := err.Error()
		n.log.LogAttrs(ctx, slog.LevelWarn, "webhook: notifier: delivery failed",
			slog.Int64("subscriber_id", sub.ID), slog.Int64("audit_id", row.ID),
			slog.Int("failures", failures), slog.String("error", msg))
		res := n.db.WithContext(ctx).Model(&Subscriber{}).
			Where("id = ? AND cursor_transaction_id = ? AND cursor_id = ?", sub.ID, from.TxID, from.ID).
			Updates(map[string]any{"failures": failures, "last_error": clipError(msg)})
		if res.Error != nil && ctx.Err() == nil {
			n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: record failure",
				slog.Int64("subscriber_id", sub.ID), slog.String("error", res.Error.Error()))
		}
	}
	// Store the cursor even if ctx ended just after the 2xx: the receiver
	// has the row, and sending it again is avoidable.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	res := n.db.WithContext(sctx).Model(&Subscriber{}).
		Where("id = ? AND cursor_transaction_id = ? AND cursor_id = ?", sub.ID, from.TxID, from.ID).
		Updates(map[string]any{
			"cursor_transaction_id": row.TransactionID, "cursor_id": row.ID,
			"failures": 0, "last_error": "", "delivered_at": now,
		})
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected != 1 {
		return false, nil
	}
	sub.CursorTxID, sub.CursorID, sub.Failures, sub.LastError = row.TransactionID, row.ID, 0, ""
	return ctx.Err() == nil, nil
}

// post makes one attempt. Its error never holds the URL's path or query.
func (n *Notifier) post(ctx context.Context, sub *Subscriber, rowID int64, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("invalid subscriber URL")
	}
	if !n.opts.AllowPrivateNetworks && !n.opts.guardedByClient {
		if err := checkHost(ctx, req.URL.Hostname()); err != nil {
			return err
		}
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gormaudit-notifier/1")
	req.Header.Set(HeaderDelivery, strconv.FormatInt(rowID, 10))
	req.Header.Set(HeaderSubscriber, strconv.FormatInt(sub.ID, 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(sub.Secret, ts, body))
	resp, err := n.opts.HTTPClient.Do(req)
	if err != nil {
		if ue, ok := asURLError(err); ok {
			err = ue.Err
		}
		return fmt.Errorf("POST to %s: %w", req.URL.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST to %s: %s", req.URL.Host, resp.Status)
	}
	return nil
}

func clipError(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// asURLError is errors.As for *url.Error, as an expression.
func asURLError(err error) (*url.Error, bool) {
	var ue *url.Error
	ok := errors.As(err, &ue)
	return ue, ok
}
