package webhook

import (
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

// TestNotifierReadsFromAReplica runs the notifier on a database whose reads
// gorm's dbresolver sends to a streaming standby: the audit rows come from
// the standby (none it has not replayed is delivered), the subscribers and
// their cursors from the primary (a subscriber the standby has not
// replayed gets its rows), and every row of the primary's stream reaches
// the receiver once, in order, while writers commit and the standby now
// and then stops replaying.
func TestNotifierReadsFromAReplica(t *testing.T) {
	fx := fixture.Open(t, &fixture.Options{Migrations: []fixture.Migration{Migrate}, Accounts: []int64{1, 2}})
	standby := dbtest.OpenReplica(t, fx.DSN)
	e := &env{db: fx.DB, ctx: fx.Ctx}
	rc := newReceiver(t)
	n := newNotifier(t, &env{db: apitest.ThroughReplica(t, fx.DSN, standby.DSN), ctx: fx.Ctx}, nil)
	var rounds atomic.Int64
	n.polled = func() {
		rounds.Add(1)
		rc.poke()
	}
	// waitRounds waits until the notifier has made k more rounds of reads.
	waitRounds := func(k int64) {
		target := rounds.Load() + k
		rc.waitFor(t, "rounds of reads", func() bool { return rounds.Load() >= target })
	}
	write := func(name string) {
		require.NoError(t, e.w().Transaction(func(tx *gorm.DB) error { return apitest.WriteOne(tx, 1, name) }))
		apitest.Settle(t, e.db)
	}

	// The standby has the first rows, then stops replaying: the
	// subscriber added next and the rows written next are on the primary
	// only.
	write("replayed")
	standby.CatchUp(t)
	standby.Pause(t)
	sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1, FromStart: true})
	write("not replayed")
	start(t, n)
	rc.waitFor(t, "the replayed rows", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) == 4
	})
	waitRounds(5)
	arrived, _ := rc.got(sub.ID)
	require.Len(t, arrived, 4, "rows delivered that the standby had not replayed")
	standby.Resume(t)
	rc.waitFor(t, "the other rows once the standby replays them", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) == 8
	})

	// Writers commit while the standby pauses and resumes, five rounds
	// of reads each way.
	const writers, txs = 4, 20
	done := apitest.WriteConcurrently(e.w(), writers, txs)
	var writeErr error
loop:
	for {
		select {
		case writeErr = <-done:
			break loop
		default:
		}
		standby.Pause(t)
		waitRounds(5)
		standby.Resume(t)
		waitRounds(5)
	}
	require.NoError(t, writeErr)
	apitest.Settle(t, e.db)
	want := apitest.StreamIDs(t, e.db, 1, "")
	require.Len(t, want, 8+writers*txs/2*4)
	rc.waitFor(t, "every row", func() bool {
		_, acked := rc.got(sub.ID)
		return len(acked) >= len(want)
	})
	arrived, acked := rc.got(sub.ID)
	if d := cmp.Diff(want, arrived); d != "" {
		t.Fatalf("deliveries differ from the primary's stream, once each in order (-want +got):\n%s", d)
	}
	require.Equal(t, want, acked)
}
