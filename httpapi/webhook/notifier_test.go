package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"gorm.io/gorm"
)

// env is one test's audited database.
type env struct {
	db  *gorm.DB
	ctx context.Context // carries fixture.Actor
}

// w returns the audited database bound to the env's actor.
func (e *env) w() *gorm.DB { return e.db.WithContext(e.ctx) }

// nsetup opens a test database with every table, the subscribers table
// included, and accounts 1 and 2 enabled.
func nsetup(t *testing.T) *env {
	t.Helper()
	db, ctx := apitest.Open(t, Migrate)
	e := &env{db: db, ctx: ctx}
	for _, acc := range []int64{1, 2} {
		_, err := audit.EnableAccount(e.ctx, e.db, acc)
		require.NoError(t, err)
	}
	return e
}

// receiver is a webhook receiver that checks every delivery's signature
// and body and records, per subscriber, the row id of every attempt and of
// every attempt it acknowledged.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[int64]string
	arrived map[int64][]int64
	acked   map[int64][]int64
	bad     []string
	// respond, when set, chooses the status of a delivery (and may block);
	// otherwise the receiver answers 200.
	respond func(r *http.Request, sub, id int64) int
	changed chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{
		secrets: map[int64]string{}, arrived: map[int64][]int64{}, acked: map[int64][]int64{},
		changed: make(chan struct{}, 1),
	}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(func() {
		rc.srv.Close()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		require.Empty(t, rc.bad, "deliveries that failed the receiver's checks")
	})
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	sub, err1 := strconv.ParseInt(r.Header.Get(HeaderSubscriber), 10, 64)
	id, err2 := strconv.ParseInt(r.Header.Get(HeaderDelivery), 10, 64)
	rc.mu.Lock()
	secret, respond := rc.secrets[sub], rc.respond
	rc.mu.Unlock()
	var ev Event
	var problem string
	switch {
	case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
		problem = "not a JSON POST"
	case errors.Join(err, err1, err2) != nil:
		problem = "headers: " + errors.Join(err, err1, err2).Error()
	case VerifySignature(secret, r.Header, body, time.Minute) != nil:
		problem = "signature: " + VerifySignature(secret, r.Header, body, time.Minute).Error()
	case json.Unmarshal(body, &ev) != nil || ev.Audit.ID != id || ev.SubscriberID != sub:
		problem = "body does not match the headers: " + string(body)
	}
	if problem != "" {
		rc.mu.Lock()
		rc.bad = append(rc.bad, problem)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.arrived[sub] = append(rc.arrived[sub], id)
	rc.mu.Unlock()
	rc.poke()
	status := http.StatusOK
	if respond != nil {
		status = respond(r, sub, id)
	}
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.acked[sub] = append(rc.acked[sub], id)
		rc.mu.Unlock()
		rc.poke()
	}
	w.WriteHeader(status)
}

func (rc *receiver) poke() {
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

func (rc *receiver) setRespond(f func(r *http.Request, sub, id int64) int) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

// subscribe adds a subscriber delivering to the receiver.
func (rc *receiver) subscribe(t *testing.T, e *env, spec SubscriberSpec) Subscriber {
	t.Helper()
	spec.URL = rc.srv.URL + "/hooks/secret-path-token"
	spec.AllowPrivateNetworks = true // the receiver is on loopback
	sub, err := AddSubscriber(e.ctx, e.db, spec)
	require.NoError(t, err)
	rc.mu.Lock()
	rc.secrets[sub.ID] = sub.Secret
	rc.mu.Unlock()
	return sub
}

func (rc *receiver) got(sub int64) (arrived, acked []int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]int64(nil), rc.arrived[sub]...), append([]int64(nil), rc.acked[sub]...)
}

// waitFor waits until cond holds, re-checking it on every delivery, and
// fails the test after a minute.
func (rc *receiver) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-rc.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testNotifierOptions make retries and polls fast.
func testNotifierOptions() *NotifierOptions {
	return &NotifierOptions{
		PollInterval: 2 * time.Millisecond, RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond,
		BatchSize: 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AllowPrivateNetworks: true, // the receivers are on loopback
	}
}

// start runs n until the returned stop is called (or the test ends); stop
// waits for Run to return.
func start(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done)
	})
	t.Cleanup(stop)
	return stop
}

func newNotifier(t *testing.T, e *env, opts *NotifierOptions) *Notifier {
	t.Helper()
	if opts == nil {
		opts = testNotifierOptions()
	}
	n, err := NewNotifier(e.db, opts)
	require.NoError(t, err)
	return n
}

// TestNotifierKilledMidStream stops the notifier while a delivery is in
// flight and writers are committing, starts a new one, and checks that the
// receiver got every row of the account in stream order, with one
// duplicate: the row that was in flight, with the same delivery id.
func TestNotifierKilledMidStream(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})

	// The kth attempt hangs until the notifier drops it.
	const k = 40
	inFlight := make(chan int64, 1)
	var attempts atomic.Int64
	rc.setRespond(func(r *http.Request, _, id int64) int {
		if attempts.Add(1) == k {
			inFlight <- id
			<-r.Context().Done()
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})

	const writers, txs = 4, 20
	total := writers * txs / 2 * 4
	done := apitest.WriteConcurrently(e.w(), writers, txs)
	stop := start(t, newNotifier(t, e, nil))
	var killedAt int64
	select {
	case killedAt = <-inFlight:
	case <-time.After(time.Minute):
		t.Fatal("the notifier never made attempt k")
	}
	stop() // returns once the delivery in flight is abandoned

	arrived, acked := rc.got(sub.ID)
	require.Len(t, arrived, k)
	require.Len(t, acked, k-1)
	stored, err := ListSubscribers(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Equal(t, acked[k-2], stored[0].CursorID, "the cursor is at the last acknowledged row")

	start(t, newNotifier(t, e, nil))
	require.NoError(t, <-done)
	apitest.Settle(t, e.db)
	want := apitest.StreamIDs(t, e.db, 1, "")
	require.Len(t, want, total)
	rc.waitFor(t, "every row", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) >= total
	})

	arrived, acked = rc.got(sub.ID)
	require.Equal(t, want[k-1], killedAt)
	wantArrived := append(append([]int64(nil), want[:k]...), want[k-1:]...)
	if d := cmp.Diff(wantArrived, arrived); d != "" {
		t.Fatalf("attempts: every row in order, the one in flight twice (-want +got):\n%s", d)
	}
	require.Equal(t, want, acked)
}

// TestNotifierReceiverDown keeps the receiver failing, first with 503 and
// then with its port closed, while rows are written, and checks that
// nothing is skipped past the failing row and everything arrives, in
// order and once, when it comes back.
func TestNotifierReceiverDown(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})
	write := func(n int) {
		for range n {
			require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: 1, Name: "r"}).Error)
		}
	}

	// Count failed attempts at the transport, where a refused connection
	// shows too.
	failed := make(chan struct{}, 100)
	opts := testNotifierOptions()
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		res, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || res.StatusCode != http.StatusOK {
			select {
			case failed <- struct{}{}:
			default:
			}
		}
		return res, err
	})}
	waitFailures := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-failed:
			case <-time.After(time.Minute):
				t.Fatal("no failed attempt within a minute")
			}
		}
	}

	rc.setRespond(func(*http.Request, int64, int64) int { return http.StatusServiceUnavailable })
	n := newNotifier(t, e, opts)
	var caughtUp atomic.Int64
	n.caughtUp = func(int64) { caughtUp.Add(1); rc.poke() }
	start(t, n)
	write(5)
	waitFailures(5)
	arrived, acked := rc.got(sub.ID)
	require.Empty(t, acked)
	first := apitest.StreamIDs(t, e.db, 1, "")[0]
	for _, id := range arrived {
		require.Equal(t, first, id, "only the first row is tried while it fails")
	}
	stored, err := ListSubscribers(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Zero(t, stored[0].CursorID)
	require.Positive(t, stored[0].Failures)
	require.Contains(t, stored[0].LastError, "503")
	require.NotContains(t, stored[0].LastError, "secret-path-token", "the URL's path is not recorded")

	// Now the port is closed.
	addr := rc.srv.Listener.Addr().String()
	rc.srv.Close()
	write(5)
	for len(failed) > 0 {
		<-failed
	}
	waitFailures(3)

	// Back up on the same address.
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	rc.srv = httptest.NewUnstartedServer(rc)
	rc.srv.Listener.Close()
	rc.srv.Listener = l
	rc.srv.Start()
	rc.setRespond(nil)
	write(5)
	apitest.Settle(t, e.db)
	want := apitest.StreamIDs(t, e.db, 1, "")
	require.Len(t, want, 15)
	rc.waitFor(t, "every row", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) >= len(want)
	})
	_, acked = rc.got(sub.ID)
	require.Equal(t, want, acked)
	// The cursor is stored after the receiver answers: wait until the
	// notifier has looked for more since.
	looked := caughtUp.Load()
	rc.waitFor(t, "the notifier to catch up", func() bool { return caughtUp.Load() > looked })
	stored, err = ListSubscribers(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Equal(t, want[len(want)-1], stored[0].CursorID)
	require.Zero(t, stored[0].Failures)
	require.Empty(t, stored[0].LastError)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNotifierFilters gives subscribers different filters and checks that
// each receives exactly the matching rows written after it subscribed (or
// all of them, from the start), in order.
func TestNotifierFilters(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	old := runbooks.Runbook{AccountID: 1, Name: "before the subscribers"}
	require.NoError(t, e.w().Create(&old).Error)
	apitest.Settle(t, e.db)
	oldID := apitest.StreamIDs(t, e.db, 1, "")[0]

	target := runbooks.Runbook{AccountID: 1, Name: "important"}
	target.ID = "00000000-0000-4000-8000-00000000000a"
	subs := map[string]Subscriber{
		"all":       rc.subscribe(t, e, SubscriberSpec{AccountID: 1}),
		"fromStart": rc.subscribe(t, e, SubscriberSpec{AccountID: 1, FromStart: true}),
		"runbook":   rc.subscribe(t, e, SubscriberSpec{AccountID: 1, RunbookID: target.ID}),
		"steps":     rc.subscribe(t, e, SubscriberSpec{AccountID: 1, AuditableType: runbooks.TypeStep}),
		"updates":   rc.subscribe(t, e, SubscriberSpec{AccountID: 1, Action: audit.ActionUpdate}),
		"both":      rc.subscribe(t, e, SubscriberSpec{AccountID: 1, RunbookID: target.ID, AuditableType: runbooks.TypeStep, Action: audit.ActionDestroy}),
		"other":     rc.subscribe(t, e, SubscriberSpec{AccountID: 2}),
	}

	var mu sync.Mutex
	caught := map[int64]int{}
	n := newNotifier(t, e, nil)
	n.caughtUp = func(id int64) {
		mu.Lock()
		caught[id]++
		mu.Unlock()
		rc.poke()
	}
	start(t, n)

	require.NoError(t, e.w().Create(&target).Error)
	other := runbooks.Runbook{AccountID: 1, Name: "other"}
	require.NoError(t, e.w().Create(&other).Error)
	for _, rb := range []runbooks.Runbook{target, other} {
		s := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "step"}
		require.NoError(t, e.w().Create(&s).Error)
		require.NoError(t, e.w().Model(&s).Update("name", "renamed").Error)
		require.NoError(t, e.w().Delete(&s).Error)
		require.NoError(t, e.w().Model(&rb).Update("description", "changed").Error)
	}
	apitest.Settle(t, e.db)

	// Every subscriber has looked for rows, and found none, twice since
	// all rows were in the stream: the second look began after the first
	// ended, so it saw every row.
	mu.Lock()
	since := map[int64]int{}
	for id, c := range caught {
		since[id] = c
	}
	mu.Unlock()
	rc.waitFor(t, "every subscriber to catch up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range subs {
			if caught[s.ID] < since[s.ID]+2 {
				return false
			}
		}
		return true
	})

	rb := runbooks.TypeRunbook
	want := map[string][]int64{
		"all":       apitest.StreamIDs(t, e.db, 1, "id <> ?", oldID),
		"fromStart": apitest.StreamIDs(t, e.db, 1, ""),
		"runbook":   apitest.StreamIDs(t, e.db, 1, "(auditable_type = ? AND auditable_id = ?) OR (associated_type = ? AND associated_id = ?)", rb, target.ID, rb, target.ID),
		"steps":     apitest.StreamIDs(t, e.db, 1, "auditable_type = ?", runbooks.TypeStep),
		"updates":   apitest.StreamIDs(t, e.db, 1, "action = ?", audit.ActionUpdate),
		"both":      apitest.StreamIDs(t, e.db, 1, "associated_id = ? AND action = ?", target.ID, audit.ActionDestroy),
		"other":     nil,
	}
	require.Len(t, want["all"], 10)
	require.Len(t, want["runbook"], 5)
	require.Len(t, want["updates"], 4)
	require.Len(t, want["both"], 1)
	got := map[string][]int64{}
	for name, s := range subs {
		arrived, acked := rc.got(s.ID)
		require.Equal(t, arrived, acked)
		got[name] = acked
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("deliveries per subscriber (-want +got):\n%s", d)
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"subscriber_id":1,"audit":{"id":7}}`)
	now := time.Now().Unix()
	headers := func(ts int64, sig ...string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		for _, s := range sig {
			h.Add(HeaderSignature, s)
		}
		return h
	}
	good := Sign("whsec_a", now, body)
	require.Regexp(t, `^v1=[0-9a-f]{64}$`, good)

	for _, tc := range []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		ok     bool
	}{
		{"good", "whsec_a", headers(now, good), body, true},
		{"rotation: one of several", "whsec_a", headers(now, Sign("whsec_old", now, body)+", "+good), body, true},
		{"second header", "whsec_a", headers(now, "v0=abc", good), body, true},
		{"tampered body", "whsec_a", headers(now, good), []byte(`{"subscriber_id":1,"audit":{"id":8}}`), false},
		{"wrong secret", "whsec_b", headers(now, good), body, false},
		{"timestamp changed", "whsec_a", headers(now+1, good), body, false},
		{"too old", "whsec_a", headers(now-600, Sign("whsec_a", now-600, body)), body, false},
		{"no signature", "whsec_a", headers(now), body, false},
		{"no timestamp", "whsec_a", http.Header{HeaderSignature: {good}}, body, false},
		{"not hex", "whsec_a", headers(now, "v1=zz"), body, false},
	} {
		err := VerifySignature(tc.secret, tc.h, tc.body, 5*time.Minute)
		if tc.ok {
			require.NoError(t, err, tc.name)
		} else {
			require.ErrorIs(t, err, ErrInvalidSignature, tc.name)
		}
	}
	// Without tolerance, an old timestamp is only checked by the MAC.
	require.NoError(t, VerifySignature("whsec_a", headers(now-600, Sign("whsec_a", now-600, body)), body, 0))
}

func TestAddSubscriber(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	for _, spec := range []SubscriberSpec{
		{URL: "http://h/x"},
		{AccountID: 1, URL: "/relative"},
		{AccountID: 1, URL: "ftp://h/x"},
		{AccountID: 1, URL: "http://h/x", AuditableType: "Users::User"},
		{AccountID: 1, URL: "http://h/x", Action: "touch"},
		{AccountID: 1, URL: "http://h/x", Secret: strings.Repeat("s", 256)},
	} {
		_, err := AddSubscriber(e.ctx, e.db, spec)
		require.Error(t, err, "%+v", spec)
	}
	a, err := AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: "http://h/x", AllowPrivateNetworks: true})
	require.NoError(t, err)
	b, err := AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: "http://h/x", Secret: "mine", AllowPrivateNetworks: true})
	require.NoError(t, err)
	require.Regexp(t, `^whsec_[A-Za-z0-9_-]{43}$`, a.Secret)
	require.Equal(t, "mine", b.Secret)
	js, err := json.Marshal(a)
	require.NoError(t, err)
	require.NotContains(t, string(js), a.Secret)

	require.ErrorIs(t, DeleteSubscriber(e.ctx, e.db, 2, a.ID), ErrSubscriberNotFound, "another account's")
	require.NoError(t, DeleteSubscriber(e.ctx, e.db, 1, a.ID))
	left, err := ListSubscribers(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, b.ID, left[0].ID)
}

// TestNotifierInsertOrderGap is the gap a notifier keyed on row ids falls
// into: A inserts its audit row (the smaller id) and stays open, B inserts
// a larger id and commits. B's row must wait until A commits, and then
// both are delivered, A's first.
func TestNotifierInsertOrderGap(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has a single writer: ids commit in order")
	}
	e := nsetup(t)
	rc := newReceiver(t)
	sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1})
	var looks atomic.Int64
	n := newNotifier(t, e, nil)
	n.caughtUp = func(int64) { looks.Add(1); rc.poke() }
	start(t, n)

	txA := e.w().Begin()
	require.NoError(t, txA.Error)
	t.Cleanup(func() { txA.Rollback() })
	require.NoError(t, txA.Create(&runbooks.Runbook{AccountID: 1, Name: "A"}).Error)
	require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: 1, Name: "B"}).Error)

	// Two complete looks after B committed have found nothing to send.
	from := looks.Load()
	rc.waitFor(t, "two looks", func() bool { return looks.Load() >= from+2 })
	arrived, _ := rc.got(sub.ID)
	require.Empty(t, arrived, "B's row was sent while A, older, was open")

	require.NoError(t, txA.Commit().Error)
	rc.waitFor(t, "both rows", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) >= 2
	})
	var byID []int64
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("account_id = 1").Order("id").Pluck("id", &byID).Error)
	_, acked := rc.got(sub.ID)
	require.Equal(t, byID, acked, "A's row (the smaller id) first, then B's")
}
