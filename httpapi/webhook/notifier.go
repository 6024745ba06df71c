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
	// PollInterval is how often the notifier reads the subscribers and,
	// for each account with a subscriber waiting for rows, the account's
	// next rows: one read of the audits table per account per interval,
	// whatever the number of subscribers. While an account has more rows
	// ready than BatchSize, the next read is made as soon as a subscriber
	// is ready for them. Defaults to 1 second.
	PollInterval time.Duration
	// BatchSize is the number of rows read from the database at a time
	// for one account. Defaults to 100.
	BatchSize int
	// Concurrency bounds the deliveries in flight at once, across
	// subscribers; each subscriber still receives its rows one at a time,
	// in order. Defaults to 32.
	Concurrency int
	// MaxAttempts is the number of consecutive failed attempts at one row
	// after which a subscriber is dead-lettered: the notifier stops
	// delivering to it, keeping its cursor, until [ResumeSubscriber].
	// Defaults to 100 (about 11 hours with the default retry waits).
	MaxAttempts int
	// MaxFailingFor dead-letters a subscriber whose deliveries have been
	// failing for that long, counted from the first failed attempt at
	// the row it is stuck on, whatever the number of attempts. Defaults
	// to 24 hours.
	MaxFailingFor time.Duration
	// RetryBase is the wait after a first failed attempt; it doubles with
	// each further failure of the same row, up to RetryMax, with jitter.
	// Defaults to 1 second.
	RetryBase time.Duration
	// RetryMax bounds the wait between attempts. A row is retried until it
	// is delivered or the subscriber is dead-lettered (MaxAttempts,
	// MaxFailingFor): nothing is dropped. Defaults to 10 minutes.
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
	if v.Concurrency == 0 {
		v.Concurrency = 32
	}
	if v.MaxAttempts == 0 {
		v.MaxAttempts = 100
	}
	if v.MaxFailingFor == 0 {
		v.MaxFailingFor = 24 * time.Hour
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
	case v.Concurrency < 1:
		return v, fmt.Errorf("webhook: NotifierOptions.Concurrency must be positive, not %d", v.Concurrency)
	case v.MaxAttempts < 1 || v.MaxFailingFor < 0:
		return v, fmt.Errorf("webhook: NotifierOptions.MaxAttempts (%d) and MaxFailingFor (%s) must be positive", v.MaxAttempts, v.MaxFailingFor)
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
// One read of the audits table per account and PollInterval serves every
// subscriber of the account: each row read goes to the subscribers whose
// filters it matches and whose cursor is before it. Deliveries to
// different subscribers run concurrently (up to Concurrency at once), so a
// slow or failing receiver delays only its own rows. A subscriber whose
// deliveries keep failing (MaxAttempts consecutive failures at one row, or
// failures for MaxFailingFor) is dead-lettered: [Subscriber.DeadAt] is
// set, the notifier skips it, and [ResumeSubscriber] makes it deliver
// again from its cursor, the failing row first.
//
// The notifier may read the audit rows from a streaming replica: with
// gorm's dbresolver plugin registered on db (for the audits table, or for
// every table), its polls go where dbresolver sends reads, and polling's
// guarantees hold there (see package httpapi, "Reading from a replica").
// It reads its subscribers and their cursors in transactions, which
// dbresolver begins on db's own connection, the primary, so that a lagging
// replica never hands it an old cursor.
//
// Run one Notifier per database. A second one is safe (a subscriber's
// cursor only moves forward, compare-and-set) but delivers rows twice.
type Notifier struct {
	db         *gorm.DB
	opts       NotifierOptions
	outOfOrder bool // the database commits out of order: poll below the oldest running transaction
	log        *slog.Logger

	sem chan struct{} // a slot per delivery in flight
	// caughtUp, when set (by tests), is called each time a read has found
	// no row to deliver to a subscriber after its cursor.
	caughtUp func(subscriberID int64)
	// polled, when set (by tests), is called at the end of each round of
	// reads.
	polled func()
	// deadLettered, when set (by tests), is called when a subscriber is
	// dead-lettered.
	deadLettered func(subscriberID int64)
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
	return &Notifier{db: db, opts: o, outOfOrder: pg, log: o.Logger, sem: make(chan struct{}, o.Concurrency)}, nil
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

// deliver posts row to sub until a 2xx, then moves sub's cursor past it.
// It returns false without error when ctx ended, sub was deleted, moved
// meanwhile or dead-lettered, and an error when the cursor could not be
// stored.
func (n *Notifier) deliver(ctx context.Context, sub *Subscriber, row audit.Audit) (bool, error) {
	body, err := json.Marshal(Event{SubscriberID: sub.ID, Audit: row})
	if err != nil {
		return false, fmt.Errorf("encode row %d: %w", row.ID, err)
	}
	from := sub.position()
	for {
		if sub.Failures > 0 {
			if !sleep(ctx, n.retryWait(sub.Failures)) {
				return false, nil
			}
			// The URL or secret may have been fixed, or the subscriber
			// deleted or resumed, while the receiver was failing.
			cur, found, err := n.load(ctx, sub.ID)
			if err != nil {
				return false, err
			}
			if !found || cur.position() != from || cur.DeadAt != nil {
				return false, nil
			}
			*sub = cur
		}
		began := time.Now().UTC().Truncate(time.Microsecond)
		err := n.attempt(ctx, sub, row.ID, body)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false, nil
		}
		if dead := n.recordFailure(ctx, sub, row.ID, began, err); dead {
			return false, nil
		}
	}
	return n.storeCursor(ctx, sub, from, row)
}

// attempt makes one attempt in one of the notifier's delivery slots.
func (n *Notifier) attempt(ctx context.Context, sub *Subscriber, rowID int64, body []byte) error {
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-n.sem }()
	return n.post(ctx, sub, rowID, body)
}

// recordFailure counts the failed attempt that began at began, in sub and
// in the database, and dead-letters sub when it has failed MaxAttempts
// times in a row or for MaxFailingFor; it reports whether it did.
func (n *Notifier) recordFailure(ctx context.Context, sub *Subscriber, rowID int64, began time.Time, err error) bool {
	sub.Failures++
	if sub.FailingSince == nil {
		sub.FailingSince = &began
	}
	msg := err.Error()
	n.log.LogAttrs(ctx, slog.LevelWarn, "webhook: notifier: delivery failed",
		slog.Int64("subscriber_id", sub.ID), slog.Int64("audit_id", rowID),
		slog.Int("failures", sub.Failures), slog.String("error", msg))
	set := map[string]any{"failures": sub.Failures, "last_error": clipError(msg), "failing_since": *sub.FailingSince}
	dead := sub.Failures >= n.opts.MaxAttempts || time.Since(*sub.FailingSince) >= n.opts.MaxFailingFor
	if dead {
		now := time.Now().UTC().Truncate(time.Microsecond)
		sub.DeadAt = &now
		set["dead_at"] = now
	}
	res := n.db.WithContext(ctx).Model(&Subscriber{}).
		Where("id = ? AND cursor_transaction_id = ? AND cursor_id = ?", sub.ID, sub.CursorTxID, sub.CursorID).
		Updates(set)
	switch {
	case res.Error != nil && ctx.Err() == nil:
		n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: record failure",
			slog.Int64("subscriber_id", sub.ID), slog.String("error", res.Error.Error()))
	case dead && res.RowsAffected == 1:
		n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: subscriber dead-lettered",
			slog.Int64("subscriber_id", sub.ID), slog.Int("failures", sub.Failures))
		if n.deadLettered != nil {
			n.deadLettered(sub.ID)
		}
	}
	return dead
}

// storeCursor moves sub's cursor from from to row, once row has been
// delivered, and resets its failures. It reports false when sub was deleted
// or moved meanwhile, or ctx has ended.
func (n *Notifier) storeCursor(ctx context.Context, sub *Subscriber, from auditlist.Position, row audit.Audit) (bool, error) {
	// Store the cursor even if ctx ended just after the 2xx: the receiver
	// has the row, and sending it again is avoidable.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	res := n.db.WithContext(sctx).Model(&Subscriber{}).
		Where("id = ? AND cursor_transaction_id = ? AND cursor_id = ?", sub.ID, from.TxID, from.ID).
		Updates(map[string]any{
			"cursor_transaction_id": row.TransactionID, "cursor_id": row.ID,
			"failures": 0, "last_error": "", "failing_since": nil, "delivered_at": now,
		})
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected != 1 {
		return false, nil
	}
	sub.CursorTxID, sub.CursorID, sub.Failures, sub.LastError, sub.FailingSince = row.TransactionID, row.ID, 0, "", nil
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
