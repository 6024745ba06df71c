package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// poller follows the polling stream and checks, on every response, that no
// row comes twice and that the cursor points at the last row.
type poller struct {
	t      *testing.T
	e      *env
	token  string
	cursor string // "" before the first poll
	seen   map[int64]bool
	got    []int64
}

// poll fetches one response and reports whether more rows are ready.
func (p *poller) poll(filters string) bool {
	p.t.Helper()
	v, err := url.ParseQuery(filters)
	require.NoError(p.t, err)
	if p.cursor == "" {
		v.Set("after_id", "0")
	} else {
		v.Set("cursor", p.cursor)
	}
	res := p.e.list(p.t, p.token, v.Encode())
	for _, r := range res.Data {
		require.False(p.t, p.seen[r.ID], "row %d returned twice", r.ID)
		p.seen[r.ID] = true
		p.got = append(p.got, r.ID)
	}
	if n := len(res.Data); n > 0 {
		require.Equal(p.t, res.Data[n-1].ID, *res.Cursor.NextAfterID)
		pos, err := decodeCursor(res.Cursor.Next)
		require.NoError(p.t, err)
		require.Equal(p.t, res.Data[n-1].ID, pos.ID)
	}
	p.cursor = res.Cursor.Next
	return res.Cursor.More
}

// TestPollingWhileWriting polls the stream while several writers commit
// transactions of several audited writes each, interleaved, and checks that
// the poller received every row of its account exactly once. On PostgreSQL
// audit ids are taken in one order and committed in another, which a poller
// keyed on the id alone gets wrong.
func TestPollingWhileWriting(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	p := &poller{t: t, e: e, token: e.bot(t, 1), seen: map[int64]bool{}}
	_, err := audit.EnableAccount(e.ctx, e.db, 2)
	require.NoError(t, err)

	const writers, txs = 4, 25
	done := apitest.WriteConcurrently(e.w(), writers, txs)

	// Poll while the writers run: a small page makes many polls.
	polls := 0
	var writeErr error
loop:
	for {
		select {
		case writeErr = <-done:
			break loop
		default:
		}
		p.poll("per_page=7")
		polls++
	}
	require.NoError(t, writeErr)

	// Every row of account 1, in the stream's order.
	var want []int64
	order := "id"
	if dbtest.Dialect() == dbtest.Postgres {
		order = "transaction_id, id"
	}
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("account_id = ?", 1).Order(order).Pluck("id", &want).Error)
	require.Len(t, want, writers*txs/2*4)

	// Drain. A transaction elsewhere on the server (another test) can hold
	// rows back for a while: keep polling until everything has come, or
	// until the deadline proves a row was lost.
	deadline := time.Now().Add(time.Minute)
	for len(p.got) < len(want) && time.Now().Before(deadline) {
		if !p.poll("per_page=50") {
			select {
			case <-time.After(10 * time.Millisecond): // back off, not synchronisation
			case <-t.Context().Done():
			}
		}
	}
	t.Logf("%d rows in %d polls while writing", len(want), polls)
	if d := cmp.Diff(want, p.got); d != "" {
		t.Fatalf("polled rows differ from the account's log in stream order (-want +got):\n%s", d)
	}
}

// TestPollingOutOfOrderCommit builds the case a row-id cursor gets wrong:
// a transaction that started first commits last. Its row must neither be
// handed out while uncommitted rows could still land before it, nor be
// skipped afterwards.
func TestPollingOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has a single writer: ids commit in order")
	}
	e := setup(t, nil)
	p := &poller{t: t, e: e, token: e.bot(t, 1), seen: map[int64]bool{}}
	ctx := context.Background()

	// A takes its transaction id first but writes its audit row last;
	// B writes an audit row (a smaller id) and commits while A is open.
	txA := e.w().Begin()
	require.NoError(t, txA.Error)
	t.Cleanup(func() { txA.Rollback() })
	require.NoError(t, txA.Exec("SELECT pg_current_xact_id()").Error)

	first := runbooks.Runbook{AccountID: 1, Name: "B, committed first"}
	require.NoError(t, e.w().Create(&first).Error)
	var firstID int64
	require.NoError(t, e.db.WithContext(ctx).Model(&audit.Audit{}).Where("auditable_id = ?", first.ID).Pluck("id", &firstID).Error)

	require.False(t, p.poll(""))
	require.Empty(t, p.got, "B's row must wait: A is older and still open")

	late := runbooks.Runbook{AccountID: 1, Name: "A, committed last"}
	require.NoError(t, txA.Create(&late).Error)
	require.NoError(t, txA.Commit().Error)
	var lateID int64
	require.NoError(t, e.db.WithContext(ctx).Model(&audit.Audit{}).Where("auditable_id = ?", late.ID).Pluck("id", &lateID).Error)
	require.Greater(t, lateID, firstID, "A's row took the larger id")

	// A poller keyed on ids would have handed out firstID and then asked
	// for id > firstID: it would also see lateID here, but in the opposite
	// case (A inserting first, B committing first) it skips A's row. Here,
	// both come now, in commit-safe order: A's transaction first.
	deadline := time.Now().Add(time.Minute)
	for len(p.got) < 2 && time.Now().Before(deadline) {
		p.poll("")
	}
	require.Equal(t, []int64{lateID, firstID}, p.got)

	// after_id resumes after a row in that order: after A's row comes B's
	// row even though its id is smaller.
	res := e.list(t, p.token, fmt.Sprint("after_id=", lateID))
	require.Equal(t, []int64{firstID}, ids(res.Data))
	res = e.list(t, p.token, fmt.Sprint("after_id=", firstID))
	require.Empty(t, res.Data)
}

// TestPollingInsertOrderGap is the classic gap: A inserts its audit row
// (smaller id) and stays open, B inserts a larger id and commits. A poller
// must not move past A's row before A commits.
func TestPollingInsertOrderGap(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has a single writer: ids commit in order")
	}
	e := setup(t, nil)
	p := &poller{t: t, e: e, token: e.bot(t, 1), seen: map[int64]bool{}}

	txA := e.w().Begin()
	require.NoError(t, txA.Error)
	t.Cleanup(func() { txA.Rollback() })
	a := runbooks.Runbook{AccountID: 1, Name: "A"}
	require.NoError(t, txA.Create(&a).Error)
	b := runbooks.Runbook{AccountID: 1, Name: "B"}
	require.NoError(t, e.w().Create(&b).Error)

	// B's row is committed and visible, yet it must not be handed out.
	var visible []int64
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("account_id = 1").Order("id").Pluck("id", &visible).Error)
	require.Len(t, visible, 1)
	p.poll("")
	require.Empty(t, p.got)

	require.NoError(t, txA.Commit().Error)
	deadline := time.Now().Add(time.Minute)
	for len(p.got) < 2 && time.Now().Before(deadline) {
		p.poll("")
	}
	var all []int64
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("account_id = 1").Order("id").Pluck("id", &all).Error)
	require.Len(t, all, 2)
	require.Equal(t, visible[0], all[1], "B took the larger id")
	require.Equal(t, all, p.got, "A's row comes first and nothing was skipped")
	require.True(t, slices.IsSorted(p.got))
}

func TestAfterID(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	e.bot(t, 2)
	mine := runbooks.Runbook{AccountID: 1, Name: "mine"}
	theirs := runbooks.Runbook{AccountID: 2, Name: "theirs"}
	require.NoError(t, e.w().Create(&mine).Error)
	require.NoError(t, e.w().Create(&theirs).Error)
	var rows []audit.Audit
	require.NoError(t, e.db.Order("id").Find(&rows).Error)
	require.Len(t, rows, 2)

	res := e.get(t, token, fmt.Sprint("after_id=", rows[1].ID))
	require.Equal(t, 400, res.status, "another account's row is no position in this account's stream: %s", res.body)
	e.settle(t)
	require.Contains(t, string(res.body), `"parameter":"after_id"`)

	got := e.list(t, token, fmt.Sprint("after_id=", rows[0].ID))
	require.Empty(t, got.Data)
	require.False(t, got.Cursor.More)
	require.Equal(t, rows[0].ID, *got.Cursor.NextAfterID, "the position stays put")

	start := e.list(t, token, "after_id=0&per_page=1")
	require.Equal(t, []int64{rows[0].ID}, ids(start.Data))
	empty := e.list(t, token, "after_id=0&action=destroy")
	require.Empty(t, empty.Data)
	require.Nil(t, empty.Cursor.NextAfterID)
	require.Equal(t, encodeCursor(auditlist.Position{}), empty.Cursor.Next)
}
