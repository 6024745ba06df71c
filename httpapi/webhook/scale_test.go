package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/runbooks"
)

// rounds counts the notifier's rounds of reads, poking the receiver after
// each.
type rounds struct {
	mu sync.Mutex
	n  int
}

func (r *rounds) hook(rc *receiver) func() {
	return func() {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
		rc.poke()
	}
}

func (r *rounds) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// waitRounds waits for two more rounds: the second began after the call.
func (r *rounds) waitRounds(t *testing.T, rc *receiver) {
	t.Helper()
	from := r.count()
	rc.waitFor(t, "two rounds", func() bool { return r.count() >= from+2 })
}

// writeRunbooks writes n audited runbooks in account acct.
func writeRunbooks(t testing.TB, e *env, acct int64, n int) {
	t.Helper()
	for range n {
		require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: acct, Name: "r"}).Error)
	}
}

// TestNotifierDeadLetter makes a receiver fail until the subscriber is
// dead-lettered, after MaxAttempts failures or MaxFailingFor, checks that
// the notifier then leaves it alone while rows keep coming, and that
// ResumeSubscriber delivers every row it missed, in order, the failing one
// first.
func TestNotifierDeadLetter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		maxAttempts   int
		maxFailingFor time.Duration
		wantAttempts  int
	}{
		{"after MaxAttempts", 3, time.Hour, 3},
		{"after MaxFailingFor", 1000, time.Nanosecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := nsetup(t)
			rc := newReceiver(t)
			sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})
			rc.setRespond(func(*http.Request, int64, int64) int { return http.StatusServiceUnavailable })

			opts := testNotifierOptions()
			opts.MaxAttempts, opts.MaxFailingFor = tc.maxAttempts, tc.maxFailingFor
			n := newNotifier(t, e, opts)
			dead := make(chan int64, 1)
			n.deadLettered = func(id int64) { dead <- id }
			var r rounds
			n.polled = r.hook(rc)
			start(t, n)

			writeRunbooks(t, e, 1, 2)
			select {
			case id := <-dead:
				require.Equal(t, sub.ID, id)
			case <-time.After(time.Minute):
				t.Fatal("the subscriber was not dead-lettered within a minute")
			}
			apitest.Settle(t, e.db)
			first := apitest.StreamIDs(t, e.db, 1, "")[0]
			stored, err := ListSubscribers(e.ctx, e.db, 1)
			require.NoError(t, err)
			require.NotNil(t, stored[0].DeadAt, "dead_at is listed")
			require.NotNil(t, stored[0].FailingSince)
			require.Equal(t, tc.wantAttempts, stored[0].Failures)
			require.Equal(t, sub.CursorID, stored[0].CursorID, "the cursor is kept")

			// Dead: rows written now are not attempted.
			writeRunbooks(t, e, 1, 2)
			r.waitRounds(t, rc)
			arrived, acked := rc.got(sub.ID)
			require.Empty(t, acked)
			require.Equal(t, slicesRepeat(first, tc.wantAttempts), arrived, "only the first row, MaxAttempts times")

			rc.setRespond(nil)
			require.ErrorIs(t, ResumeSubscriber(e.ctx, e.db, 2, sub.ID), ErrSubscriberNotFound, "another account's")
			require.NoError(t, ResumeSubscriber(e.ctx, e.db, 1, sub.ID))
			apitest.Settle(t, e.db)
			want := apitest.StreamIDs(t, e.db, 1, "")
			require.Len(t, want, 4)
			rc.waitFor(t, "the missed rows", func() bool {
				_, acked := rc.got(sub.ID)
				return len(acked) >= len(want)
			})
			_, acked = rc.got(sub.ID)
			if d := cmp.Diff(want, acked); d != "" {
				t.Fatalf("rows acknowledged after resuming (-want +got):\n%s", d)
			}
			stored, err = ListSubscribers(e.ctx, e.db, 1)
			require.NoError(t, err)
			require.Nil(t, stored[0].DeadAt)
		})
	}
}

func slicesRepeat(id int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = id
	}
	return out
}

// readsKey marks the context of the notifier whose reads are counted.
type readsKey struct{}

// countReads counts the statements on db that read the audits table with
// a context carrying readsKey.
func countReads(t *testing.T, db *gorm.DB, reads *atomic.Int64) {
	t.Helper()
	require.NoError(t, db.Callback().Row().After("gorm:row").Register("test:count_audit_reads", func(tx *gorm.DB) {
		ctx := tx.Statement.Context
		if ctx != nil && ctx.Value(readsKey{}) != nil && strings.Contains(tx.Statement.SQL.String(), "FROM "+auditsql.Table+" ") {
			reads.Add(1)
		}
	}))
}

// TestNotifierOneReadPerAccount runs 50 subscribers with different filters
// on two accounts and checks that each round of the notifier reads the
// audits table at most once per account (not once per subscriber), exactly
// once per account once every subscriber has caught up, and that every
// subscriber still receives exactly its rows, in order.
func TestNotifierOneReadPerAccount(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	var reads atomic.Int64
	countReads(t, e.db, &reads)

	specs := []SubscriberSpec{{}, {AuditableType: runbooks.TypeStep}, {Action: audit.ActionUpdate}}
	subs := map[int64]SubscriberSpec{}
	for i := range 50 {
		spec := specs[i%len(specs)]
		spec.AccountID = int64(1 + i%2)
		subs[rc.subscribe(t, e, spec).ID] = spec
	}

	n := newNotifier(t, e, nil)
	var mu sync.Mutex
	var perRound []int64
	n.polled = func() {
		mu.Lock()
		perRound = append(perRound, reads.Swap(0))
		mu.Unlock()
		rc.poke()
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), readsKey{}, true))
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	require.NoError(t, <-apitest.WriteConcurrently(e.w(), 2, 6))
	apitest.Settle(t, e.db)
	want := map[int64][]int64{}
	total := 0
	for id, spec := range subs {
		switch {
		case spec.AuditableType != "":
			want[id] = apitest.StreamIDs(t, e.db, spec.AccountID, "auditable_type = ?", spec.AuditableType)
		case spec.Action != "":
			want[id] = apitest.StreamIDs(t, e.db, spec.AccountID, "action = ?", spec.Action)
		default:
			want[id] = apitest.StreamIDs(t, e.db, spec.AccountID, "")
		}
		require.NotEmpty(t, want[id])
		total += len(want[id])
	}
	got := func() (map[int64][]int64, int) {
		out, count := map[int64][]int64{}, 0
		for id := range subs {
			_, acked := rc.got(id)
			out[id], count = acked, count+len(acked)
		}
		return out, count
	}
	rc.waitFor(t, "every row to every subscriber", func() bool { _, c := got(); return c >= total })
	mu.Lock()
	caughtUpAt := len(perRound)
	mu.Unlock()
	rc.waitFor(t, "three more rounds", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(perRound) >= caughtUpAt+3
	})

	acked, _ := got()
	if d := cmp.Diff(want, acked); d != "" {
		t.Fatalf("rows acknowledged per subscriber (-want +got):\n%s", d)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range perRound {
		require.LessOrEqual(t, r, int64(2), "round %d read the audits table %d times for 2 accounts", i, r)
	}
	// The round in progress when the last row was acknowledged may have
	// left a subscriber out; the next ones read both accounts.
	require.Equal(t, []int64{2, 2}, perRound[caughtUpAt+1:caughtUpAt+3], "rounds after catching up")
}

// TestNotifierSlowSubscriberDoesNotDelayFast holds one subscriber's first
// delivery until another subscriber of the same account has received
// every row, then releases it and checks it gets every row, in order.
func TestNotifierSlowSubscriberDoesNotDelayFast(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	slow := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})
	fast := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})
	release := make(chan struct{})
	rc.setRespond(func(r *http.Request, sub, _ int64) int {
		if sub == slow.ID {
			select {
			case <-release:
			case <-r.Context().Done():
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	})
	start(t, newNotifier(t, e, nil))

	writeRunbooks(t, e, 1, 5)
	apitest.Settle(t, e.db)
	want := apitest.StreamIDs(t, e.db, 1, "")
	rc.waitFor(t, "every row to the fast subscriber", func() bool {
		_, acked := rc.got(fast.ID)
		return len(acked) >= len(want)
	})
	arrived, acked := rc.got(slow.ID)
	require.Equal(t, want[:1], arrived, "the slow subscriber holds its first row")
	require.Empty(t, acked)

	close(release)
	rc.waitFor(t, "every row to the slow subscriber", func() bool {
		_, acked := rc.got(slow.ID)
		return len(acked) >= len(want)
	})
	for _, id := range []int64{fast.ID, slow.ID} {
		arrived, acked := rc.got(id)
		require.Equal(t, want, acked, "subscriber %d", id)
		require.Equal(t, want, arrived, "subscriber %d: each row once", id)
	}
}

// BenchmarkNotifier delivers rowsPerAccount new rows of each of 10
// accounts to 1,000 subscribers (100 per account) and reports the rows
// delivered (acknowledged by the receiver, cursor stored) per second.
func BenchmarkNotifier(b *testing.B) {
	const accounts, subsPerAccount, rowsPerAccount = 10, 100, 5
	db, ctx := apitest.Open(b, Migrate)
	e := &env{db: db, ctx: ctx}
	var acked atomic.Int64
	target := make(chan struct{}, 1)
	var want atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if acked.Add(1) == want.Load() {
			target <- struct{}{}
		}
	}))
	b.Cleanup(srv.Close)
	for acct := int64(1); acct <= accounts; acct++ {
		_, err := audit.EnableAccount(ctx, db, acct)
		require.NoError(b, err)
		for range subsPerAccount {
			_, err := AddSubscriber(ctx, db, SubscriberSpec{AccountID: acct, URL: srv.URL, AllowPrivateNetworks: true})
			require.NoError(b, err)
		}
	}
	opts := testNotifierOptions()
	opts.PollInterval, opts.BatchSize = 50*time.Millisecond, 100
	opts.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	n, err := NewNotifier(db, opts)
	require.NoError(b, err)

	var delivered int64
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		for acct := int64(1); acct <= accounts; acct++ {
			writeRunbooks(b, e, acct, rowsPerAccount)
		}
		apitest.Settle(b, db)
		acked.Store(0)
		want.Store(accounts * subsPerAccount * rowsPerAccount)
		b.StartTimer()

		began := time.Now()
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(rctx) }()
		select {
		case <-target:
		case <-time.After(5 * time.Minute):
			b.Fatal("the rows were not delivered within 5 minutes")
		}
		elapsed += time.Since(began)
		delivered += want.Load()
		cancel()
		require.NoError(b, <-done)
	}
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "rows_delivered/s")
}
