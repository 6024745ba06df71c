package webhook

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
	"github.com/gormaudit/gormaudit/runbooks"
)

// subState is what a running notifier knows of one subscriber besides its
// row.
type subState struct {
	// busy is set while a worker delivers a batch to the subscriber; the
	// worker then owns it, and the subscriber is left out of reads.
	busy   bool
	cancel context.CancelFunc
	// finished is the round during which the last worker ended: that
	// round's read of the subscriber may predate the worker's last
	// cursor, so the subscriber waits for the next round.
	finished int
	// scanned is the end of the last batch whose rows due to the
	// subscriber were all delivered: rows up to it that are not due (its
	// filters skip them) need not be read for it again.
	scanned auditlist.Position
}

// dispatcher is one [Notifier.Run]: it reads rows once per account and
// hands them to one worker per subscriber.
type dispatcher struct {
	n     *Notifier
	mu    sync.Mutex
	subs  map[int64]*subState
	ready chan struct{} // a worker has finished its batch
	wg    sync.WaitGroup
	seq   int // the current round
}

// Run delivers until ctx is done, then stops every delivery in flight and
// returns nil. Subscribers added, deleted or resumed while it runs are
// picked up within PollInterval. Database and delivery errors are logged
// and retried; they do not end Run.
func (n *Notifier) Run(ctx context.Context) error {
	d := &dispatcher{n: n, subs: map[int64]*subState{}, ready: make(chan struct{}, 1)}
	defer d.wg.Wait() // the workers' contexts derive from ctx
	for {
		more := d.round(ctx)
		if n.polled != nil {
			n.polled()
		}
		var ready <-chan struct{}
		if more {
			ready = d.ready
		}
		t := time.NewTimer(n.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-ready:
			t.Stop()
		}
	}
}

// round reads the subscribers, then, for each account with subscribers
// waiting for rows, the account's next rows, and starts a worker for each
// subscriber that is due some of them. It reports whether an account had
// more rows ready than one batch.
func (d *dispatcher) round(ctx context.Context) bool {
	d.mu.Lock()
	d.seq++
	d.mu.Unlock()
	var subs []Subscriber
	err := d.n.fromPrimary(ctx, func(tx *gorm.DB) error { return tx.Where("dead_at IS NULL").Order("id").Find(&subs).Error })
	if err != nil {
		if ctx.Err() == nil {
			d.n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: list subscribers", slog.String("error", err.Error()))
		}
		return false
	}
	idle := d.idle(subs)
	more := false
	for _, acct := range slices.Sorted(maps.Keys(idle)) {
		m, err := d.dispatch(ctx, acct, idle[acct])
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			d.n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: read audits",
				slog.Int64("account_id", acct), slog.String("error", err.Error()))
		}
		more = more || m
	}
	return more
}

// waiting is a subscriber no worker owns, and the position after which
// rows may be due to it: its cursor, or the end of the rows already
// scanned for it.
type waiting struct {
	sub Subscriber
	pos auditlist.Position
}

// idle forgets the subscribers not in subs (deleted or dead-lettered),
// stopping their workers, and returns, by account, the others that no
// worker owns nor left during this round.
func (d *dispatcher) idle(subs []Subscriber) map[int64][]waiting {
	d.mu.Lock()
	defer d.mu.Unlock()
	live := make(map[int64]bool, len(subs))
	out := map[int64][]waiting{}
	for _, sub := range subs {
		live[sub.ID] = true
		st := d.subs[sub.ID]
		if st == nil {
			st = &subState{}
			d.subs[sub.ID] = st
		}
		if st.busy || st.finished == d.seq {
			continue
		}
		w := waiting{sub: sub, pos: sub.position()}
		if before(w.pos, st.scanned) {
			w.pos = st.scanned
		}
		out[sub.AccountID] = append(out[sub.AccountID], w)
	}
	for id, st := range d.subs {
		if !live[id] {
			if st.cancel != nil {
				st.cancel()
			}
			delete(d.subs, id)
		}
	}
	return out
}

// dispatch reads, once, the account's rows after the earliest cursor of
// subs, and starts a worker for each subscriber due some of them. It
// reports whether more rows were ready than one batch.
func (d *dispatcher) dispatch(ctx context.Context, acct int64, subs []waiting) (bool, error) {
	from := subs[0].pos
	for _, w := range subs[1:] {
		if before(w.pos, from) {
			from = w.pos
		}
	}
	s := auditlist.Poll(&auditlist.Filter{}, acct, from, d.n.opts.BatchSize, d.n.outOfOrder)
	var rows []audit.Audit
	if err := d.n.db.WithContext(ctx).Raw(s.SQL, s.Args...).Scan(&rows).Error; err != nil {
		return false, err
	}
	more := len(rows) > d.n.opts.BatchSize
	if more {
		rows = rows[:d.n.opts.BatchSize]
	}
	if len(rows) == 0 {
		d.caughtUp(subs)
		return false, nil
	}
	last := rows[len(rows)-1]
	end := auditlist.Position{TxID: last.TransactionID, ID: last.ID}
	var still []waiting
	for _, w := range subs {
		var due []audit.Audit
		for _, r := range rows {
			if before(w.pos, auditlist.Position{TxID: r.TransactionID, ID: r.ID}) && w.sub.matches(&r) {
				due = append(due, r)
			}
		}
		switch {
		case len(due) > 0:
			d.start(ctx, w.sub, due, end)
		case before(w.pos, end):
			d.skip(w.sub.ID, end)
			fallthrough
		default:
			still = append(still, w)
		}
	}
	if !more {
		d.caughtUp(still)
	}
	return more, nil
}

// caughtUp tells the test hook that a read found nothing due to subs.
func (d *dispatcher) caughtUp(subs []waiting) {
	if d.n.caughtUp == nil {
		return
	}
	for _, w := range subs {
		d.n.caughtUp(w.sub.ID)
	}
}

// skip records that the rows up to end hold nothing due to subscriber id,
// which is ready for the next ones.
func (d *dispatcher) skip(id int64, end auditlist.Position) {
	d.mu.Lock()
	if st := d.subs[id]; st != nil && before(st.scanned, end) {
		st.scanned = end
	}
	d.mu.Unlock()
	d.signal()
}

// signal wakes Run, if it waits for a subscriber to be ready for the rows
// after a full batch.
func (d *dispatcher) signal() {
	select {
	case d.ready <- struct{}{}:
	default:
	}
}

// start runs a worker that delivers due, in order, to sub, then records
// that the batch ending at end was scanned for it, if it delivered every
// row.
func (d *dispatcher) start(ctx context.Context, sub Subscriber, due []audit.Audit, end auditlist.Position) {
	wctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	st := d.subs[sub.ID]
	st.busy, st.cancel = true, cancel
	d.mu.Unlock()
	d.wg.Go(func() {
		defer cancel()
		all := d.n.deliverAll(wctx, &sub, due)
		d.mu.Lock()
		st.busy, st.cancel, st.finished = false, nil, d.seq
		if all && before(st.scanned, end) {
			st.scanned = end
		}
		d.mu.Unlock()
		d.signal()
	})
}

// deliverAll delivers rows to sub in order and reports whether every one
// was delivered.
func (n *Notifier) deliverAll(ctx context.Context, sub *Subscriber, rows []audit.Audit) bool {
	for _, r := range rows {
		ok, err := n.deliver(ctx, sub, r)
		if err != nil && ctx.Err() == nil {
			n.log.LogAttrs(ctx, slog.LevelError, "webhook: notifier: advance cursor",
				slog.Int64("subscriber_id", sub.ID), slog.String("error", err.Error()))
		}
		if !ok || err != nil {
			// Stopped, deleted, dead-lettered, moved by another notifier
			// or a database error: the next round reads it again.
			return false
		}
	}
	return true
}

// fromPrimary runs fn, a read of the notifier's own state, in a
// transaction. gorm's dbresolver plugin, which may send reads to a replica,
// begins transactions on the database's own connection, the primary: the
// notifier never acts on a cursor older than the one it stored last. The
// audit rows themselves may come from a replica (see [Notifier]).
func (n *Notifier) fromPrimary(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return n.db.WithContext(ctx).Transaction(fn)
}

// load reads the subscriber.
func (n *Notifier) load(ctx context.Context, id int64) (Subscriber, bool, error) {
	var subs []Subscriber
	err := n.fromPrimary(ctx, func(tx *gorm.DB) error { return tx.Where("id = ?", id).Limit(1).Find(&subs).Error })
	if err != nil {
		return Subscriber{}, false, err
	}
	if len(subs) == 0 {
		return Subscriber{}, false, nil
	}
	return subs[0], true, nil
}

// matches reports whether r passes every one of s's non-empty filters, as
// the list endpoint's filters of the same names would.
func (s *Subscriber) matches(r *audit.Audit) bool {
	switch {
	case s.AuditableType != "" && r.AuditableType != s.AuditableType:
		return false
	case s.Action != "" && r.Action != s.Action:
		return false
	case s.RunbookID != "":
		return (r.AuditableType == runbooks.TypeRunbook && r.AuditableID == s.RunbookID) ||
			(r.AssociatedType == runbooks.TypeRunbook && r.AssociatedID == s.RunbookID)
	}
	return true
}

// before reports whether a comes before b in the polling stream.
func before(a, b auditlist.Position) bool {
	return a.TxID < b.TxID || (a.TxID == b.TxID && a.ID < b.ID)
}
