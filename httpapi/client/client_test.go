package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"

	"github.com/gormaudit/gormaudit/httpapi"
	"gorm.io/gorm"
)

// env is one test's audited database and the endpoint serving it.
type env struct {
	db  *gorm.DB
	ctx context.Context // carries fixture.Actor
	url string          // the endpoint
	hc  *http.Client
}

// setup opens a test database with every table and the audit plugin, and
// serves the endpoint on it with both auditable types by default.
func setup(t *testing.T) *env {
	t.Helper()
	db, ctx := apitest.Open(t, httpapi.Migrate)
	h, err := httpapi.NewHandler(db, &httpapi.Options{
		Logger: slog.New(slog.DiscardHandler), DefaultAuditableType: httpapi.AllAuditableTypes,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{db: db, ctx: ctx, url: srv.URL + "/v1/runbook_audits", hc: srv.Client()}
}

// w returns the audited database bound to the env's actor.
func (e *env) w() *gorm.DB { return e.db.WithContext(e.ctx) }

// bot enables the account and returns a new bot token for it.
func (e *env) bot(t *testing.T, accountID int64) string {
	t.Helper()
	_, err := audit.EnableAccount(e.ctx, e.db, accountID)
	require.NoError(t, err)
	tok, _, err := httpapi.IssueToken(e.ctx, e.db, httpapi.TokenSpec{AccountID: accountID, Name: "client test bot"})
	require.NoError(t, err)
	return tok
}

// client returns a client of the env's endpoint with token.
func (e *env) client(t *testing.T, token string) *Client {
	t.Helper()
	c, err := New(e.url, token, &Options{HTTPClient: e.hc})
	require.NoError(t, err)
	return c
}

// ids returns the rows' ids in order.
func ids(rows []Row) []int64 {
	out := make([]int64, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// collector records what a consumer received and wakes waiters on each
// change.
type collector struct {
	mu      sync.Mutex
	ids     []int64
	changed chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) add(id int64) {
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	c.poke()
}

func (c *collector) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) got() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.ids...)
}

// waitFor waits until cond holds, re-checking it each time c changes, and
// fails the test after a minute.
func (c *collector) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; received %d rows", what, len(c.got()))
		}
	}
}

func TestClientListAndAll(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t, e.bot(t, 1))
	e.bot(t, 2)
	var rbs []runbooks.Runbook
	for i := range 5 {
		rb := runbooks.Runbook{AccountID: 1, Name: fmt.Sprint("rb", i)}
		require.NoError(t, e.w().Create(&rb).Error)
		require.NoError(t, e.w().Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s"}).Error)
		rbs = append(rbs, rb)
	}
	require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: 2, Name: "theirs"}).Error)
	require.NoError(t, e.w().Model(&rbs[2]).Update("name", "renamed").Error)
	ctx := t.Context()

	all := apitest.StreamIDs(t, e.db, 1, "")
	require.Len(t, all, 11)
	var newestFirst []int64
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("account_id = 1").Order("created_at DESC, id DESC").Pluck("id", &newestFirst).Error)

	p, err := c.List(ctx, &ListOptions{PerPage: 4, Page: 2})
	require.NoError(t, err)
	require.Equal(t, newestFirst[4:8], ids(p.Rows))
	require.Equal(t, Pagination{Count: 11, CountExact: true, Page: 2, PerPage: 4, Items: 4, Pages: 3, Last: 3, Prev: ptr(1), Next: ptr(3)}, p.Pagination)
	require.Equal(t, "Runbooks::Runbook", p.Rows[0].AuditableType, "rows decode to Row")

	var got []int64
	for r, err := range c.All(ctx, &ListOptions{PerPage: 3}) {
		require.NoError(t, err)
		got = append(got, r.ID)
	}
	if d := cmp.Diff(newestFirst, got); d != "" {
		t.Fatalf("All, newest first (-want +got):\n%s", d)
	}

	// Filters reach the server: the runbook's own rows and its step's row,
	// oldest first.
	got = got[:0]
	for r, err := range c.All(ctx, &ListOptions{Filters: Filters{RunbookID: rbs[2].ID}, PerPage: 1, Ascending: true}) {
		require.NoError(t, err)
		got = append(got, r.ID)
	}
	require.Equal(t, apitest.StreamIDs(t, e.db, 1, "auditable_id = ? OR associated_id = ?", rbs[2].ID, rbs[2].ID), got)

	p, err = c.List(ctx, &ListOptions{Filters: Filters{AuditableType: runbooks.TypeRunbook, Action: ActionUpdate}})
	require.NoError(t, err)
	require.Len(t, p.Rows, 1)
	require.Equal(t, rbs[2].ID, p.Rows[0].AuditableID)

	// Stopping early stops reading.
	n := 0
	for _, err := range c.All(ctx, &ListOptions{PerPage: 2}) {
		require.NoError(t, err)
		n++
		if n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good := e.bot(t, 1)
	ctx := t.Context()

	_, err := e.client(t, "gat_nope").List(ctx, nil)
	ae, ok := asAPIError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, APIError{StatusCode: 401, Code: "unauthenticated", Message: ae.Message}, *ae)
	require.NotContains(t, err.Error(), "gat_nope", "the token never appears in errors")

	_, err = e.client(t, good).List(ctx, &ListOptions{Filters: Filters{AuditableType: "Users::User"}})
	ae, ok = asAPIError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 400, ae.StatusCode)
	require.Equal(t, "invalid_parameter", ae.Code)
	require.Equal(t, "auditable_type", ae.Parameter)

	// All yields the error and stops.
	n := 0
	for r, err := range e.client(t, good).All(ctx, &ListOptions{PerPage: 1000}) {
		require.Zero(t, r.ID)
		ae, ok := asAPIError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, "per_page", ae.Parameter)
		n++
	}
	require.Equal(t, 1, n)

	_, err = e.client(t, good).Poll(ctx, "not-a-cursor", nil, 0)
	ae, ok = asAPIError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "cursor", ae.Parameter)

	// Watch ends at a 4xx rather than retrying it.
	err = e.client(t, "gat_nope").Watch(ctx, &WatchOptions{Interval: time.Millisecond}, func(Row) error {
		t.Error("no row expected")
		return nil
	})
	ae, ok = asAPIError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 401, ae.StatusCode)

	for _, bad := range []string{"", "ftp://x/y", "/relative", "http://h/p?q=1"} {
		_, err := New(bad, good, nil)
		require.Error(t, err, bad)
	}
	_, err = New("http://h/p", "", nil)
	require.Error(t, err)
}

// TestClientWatchWhileWriting watches the log while writers commit
// concurrently, stops the watch halfway through at a checkpoint, resumes
// from the saved cursor, and checks that every row of the account came
// exactly once, in the stream's order.
func TestClientWatchWhileWriting(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t, e.bot(t, 1))
	_, err := audit.EnableAccount(e.ctx, e.db, 2)
	require.NoError(t, err)

	const writers, txs = 4, 20
	total := writers * txs / 2 * 4 // account 1's rows
	done := apitest.WriteConcurrently(e.w(), writers, txs)

	col := newCollector()
	var saved string
	errStop := errors.New("stop at checkpoint")
	watch := func(ctx context.Context, from string, stopAfter int) error {
		return c.Watch(ctx, &WatchOptions{
			Cursor: from, PerPage: 7, Interval: 2 * time.Millisecond,
			Checkpoint: func(_ context.Context, cursor string) error {
				saved = cursor
				if len(col.got()) >= stopAfter {
					return errStop
				}
				return nil
			},
		}, func(r Row) error {
			if r.AccountID != 1 {
				return fmt.Errorf("row %d of account %d", r.ID, r.AccountID)
			}
			col.add(r.ID)
			return nil
		})
	}

	// First run: stops at the first checkpoint after a third of the rows.
	require.ErrorIs(t, watch(t.Context(), "", total/3), errStop)
	first := len(col.got())
	require.GreaterOrEqual(t, first, total/3)

	// Second run resumes from the saved cursor while writes go on.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- watch(ctx, saved, total+1) }()

	require.NoError(t, <-done)
	col.waitFor(t, "every row", func() bool { return len(col.got()) >= total })
	cancel()
	require.ErrorIs(t, <-watched, context.Canceled)

	want := apitest.StreamIDs(t, e.db, 1, "")
	require.Len(t, want, total)
	if d := cmp.Diff(want, col.got()); d != "" {
		t.Fatalf("watched rows differ from the account's log in stream order (-want +got):\n%s", d)
	}
	t.Logf("%d rows, %d before the restart", total, first)
}

func ptr[T any](v T) *T { return &v }
