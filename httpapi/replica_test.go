package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/plugin/dbresolver"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// replicaEnv is one test's primary with a handler on it, a handler that
// reads through gorm's dbresolver from a streaming standby of it, and the
// standby's controls.
type replicaEnv struct {
	primary, replica *env
	standby          *dbtest.Replica
	token            string
}

func setupReplica(t *testing.T) *replicaEnv {
	t.Helper()
	fx := fixture.Open(t, &fixture.Options{Migrations: []fixture.Migration{Migrate}, Accounts: []int64{1, 2}})
	standby := dbtest.OpenReplica(t, fx.DSN)
	opts := func() *Options {
		return &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DefaultAuditableType: AllAuditableTypes}
	}
	ph, err := NewHandler(fx.DB, opts())
	require.NoError(t, err)

	// The service's database as the package documentation has it: the
	// primary, with dbresolver sending the audits table's reads to the
	// standby. (The notifier's test sends every read there.)
	rdb := apitest.ThroughReplica(t, fx.DSN, standby.DSN, audit.TableName)
	o := opts()
	o.ReadClauses = []clause.Expression{dbresolver.Read}
	rh, err := NewHandler(rdb, o)
	require.NoError(t, err)

	tok, _, err := IssueToken(fx.Ctx, fx.DB, TokenSpec{AccountID: 1, Name: "replica bot"})
	require.NoError(t, err)
	standby.CatchUp(t) // the schema, the token and the enabled accounts
	return &replicaEnv{
		primary: &env{db: fx.DB, h: ph, ctx: fx.Ctx},
		replica: &env{db: rdb, h: rh, ctx: fx.Ctx},
		standby: standby, token: tok,
	}
}

// TestPollingThroughAReplicaFollowsThePrimary reads the polling stream
// from a hot standby, lagging and not, and from the primary with the same
// cursor, step by step. A standby's snapshots follow the primary's commit
// order, and its xmin holds back the transactions the primary still runs:
// so the stream read there is the primary's, only later, and a cursor from
// either server is good on the other.
func TestPollingThroughAReplicaFollowsThePrimary(t *testing.T) {
	r := setupReplica(t)
	if dbtest.Dialect() != dbtest.Postgres {
		t.Fatal("unreachable: OpenReplica skips on SQLite")
	}
	w := r.primary.w()
	p := &poller{t: t, e: r.replica, token: r.token, seen: map[int64]bool{}}

	// Caught up, the standby hands out what the primary committed.
	require.NoError(t, w.Transaction(func(tx *gorm.DB) error { return apitest.WriteOne(tx, 1, "before the lag") }))
	r.primary.settle(t)
	r.standby.CatchUp(t)
	p.poll("")
	require.Len(t, p.got, 4)

	// Lagging, it hands out nothing new, and a cursor it gave is good on
	// the primary, which has the rows.
	r.standby.Pause(t)
	require.NoError(t, w.Transaction(func(tx *gorm.DB) error { return apitest.WriteOne(tx, 1, "during the lag") }))
	r.primary.settle(t)
	lagCursor := p.cursor
	require.False(t, p.poll(""))
	require.Len(t, p.got, 4, "the standby is paused: it has not got the new rows")
	p.e = r.primary
	p.poll("")
	require.Len(t, p.got, 8)
	lagRows := p.got[4:]

	// An after_id or cursor the standby has not replayed yet is accepted
	// (after_id is looked up on the primary) and hands out nothing there.
	res := r.replica.list(t, r.token, fmt.Sprint("after_id=", lagRows[3]))
	require.Empty(t, res.Data)
	require.Equal(t, lagRows[3], *res.Cursor.NextAfterID)
	p.e = r.replica
	require.False(t, p.poll(""))
	require.Len(t, p.got, 8)

	// Caught up, the standby hands out the rows after its own old cursor,
	// the ones the primary handed out.
	r.standby.Resume(t)
	r.standby.CatchUp(t)
	res = r.replica.list(t, r.token, "cursor="+lagCursor)
	require.Equal(t, lagRows, ids(res.Data))

	// A transaction that took its id first and commits last holds the
	// rows committed meanwhile back on the standby too, until it ends.
	txA := w.Begin()
	require.NoError(t, txA.Error)
	t.Cleanup(func() { txA.Rollback() })
	require.NoError(t, txA.Exec("SELECT pg_current_xact_id()").Error)
	require.NoError(t, w.Create(&runbooks.Runbook{AccountID: 1, Name: "B, committed first"}).Error)
	r.standby.CatchUp(t)
	require.False(t, p.poll(""))
	require.Len(t, p.got, 8, "B's row must wait on the standby too: A is older and still open")
	require.NoError(t, txA.Create(&runbooks.Runbook{AccountID: 1, Name: "A, committed last"}).Error)
	require.NoError(t, txA.Commit().Error)
	r.primary.settle(t)
	r.standby.CatchUp(t)
	p.poll("")
	var names []string
	require.NoError(t, r.primary.db.Model(&audit.Audit{}).Where("id IN ?", p.got[8:]).
		Order("transaction_id, id").Pluck("audited_changes->>'name'", &names).Error)
	require.Equal(t, []string{"A, committed last", "B, committed first"}, names)
	want := r.primary.streamIDs(t, 1, "")
	if d := cmp.Diff(want, p.got); d != "" {
		t.Fatalf("rows polled differ from the primary's stream (-want +got):\n%s", d)
	}

	// A page and its count come from one snapshot of the standby.
	page := r.replica.list(t, r.token, "per_page=3")
	require.Equal(t, int64(len(want)), page.Pagination.Count)
	require.Len(t, page.Data, 3)
}

// TestPollingThroughAReplicaWhileWriting polls while writers commit on the
// primary, through the standby (which now and then stops replaying, for a
// while, as a lagging standby does) and, every third poll, through the
// primary, all with one cursor: the rows polled are the primary's stream,
// each once, in order.
func TestPollingThroughAReplicaWhileWriting(t *testing.T) {
	r := setupReplica(t)
	p := &poller{t: t, e: r.replica, token: r.token, seen: map[int64]bool{}}

	const writers, txs = 4, 25
	done := apitest.WriteConcurrently(r.primary.w(), writers, txs)
	polls, paused := 0, false
	var writeErr error
loop:
	for {
		select {
		case writeErr = <-done:
			break loop
		default:
		}
		p.e = r.replica
		if polls%3 == 2 {
			p.e = r.primary
		}
		p.poll("per_page=7")
		polls++
		if polls%10 == 0 {
			if paused = !paused; paused {
				r.standby.Pause(t)
			} else {
				r.standby.Resume(t)
			}
		}
	}
	require.NoError(t, writeErr)
	r.standby.Resume(t)

	want := r.primary.streamIDs(t, 1, "")
	require.Len(t, want, writers*txs/2*4)
	r.primary.settle(t)
	r.standby.CatchUp(t)
	p.e = r.replica
	deadline := time.Now().Add(time.Minute)
	for len(p.got) < len(want) && time.Now().Before(deadline) {
		if !p.poll("per_page=50") {
			r.primary.settle(t)
			r.standby.CatchUp(t)
		}
	}
	t.Logf("%d rows in %d polls while writing", len(want), polls)
	if d := cmp.Diff(want, p.got); d != "" {
		t.Fatalf("rows polled differ from the primary's stream (-want +got):\n%s", d)
	}
}
