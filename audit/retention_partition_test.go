package audit_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// partitionAudits replaces the (empty) audits table by one in the
// partitioned layout (audit.Partition) with a partition audits_pYYYY_MM for
// each month of 2026 from January to last, whatever layout the test
// database started with.
func partitionAudits(t testing.TB, db *gorm.DB, last time.Month) {
	t.Helper()
	require.NoError(t, db.Exec(`DROP TABLE audits`).Error)
	require.NoError(t, audit.Partition(context.Background(), db, &audit.PartitionOptions{
		MaintainOptions: audit.MaintainOptions{Now: func() time.Time { return date(1, 1) }, MonthsAhead: int(last - time.January)}}))
}

// partitionNames lists the partitions of the audits table.
func partitionNames(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var names []string
	require.NoError(t, db.Raw(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audits'::regclass ORDER BY 1`).Scan(&names).Error)
	return names
}

// monthly writes, for each (account, day of 2026) of at, one runbook's
// create or rename at noon.
func monthly(t *testing.T, b *bundle, clk *clock, at map[int64][]time.Time) {
	t.Helper()
	type write struct {
		acct int64
		at   time.Time
	}
	var ws []write
	for acct, days := range at {
		for _, d := range days {
			ws = append(ws, write{acct, d.Add(12 * time.Hour)})
		}
	}
	slices.SortFunc(ws, func(a, b write) int { return a.at.Compare(b.at) })
	rbs := map[int64]*runbooks.Runbook{}
	for _, w := range ws {
		clk.Set(w.at)
		if rbs[w.acct] == nil {
			rbs[w.acct] = &runbooks.Runbook{AccountID: w.acct, Name: w.at.Format(time.DateOnly)}
			require.NoError(t, b.w().Create(rbs[w.acct]).Error)
			continue
		}
		require.NoError(t, b.w().Model(rbs[w.acct]).Update("name", w.at.Format(time.DateOnly)).Error)
	}
}

func date(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }

func TestPruneDropsWholePartitions(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("partitions are PostgreSQL's; the batched path is tested on both databases")
	}
	clk := &clock{now: date(1, 1)}
	b := setup(t, audit.Config{Now: clk.Now})
	partitionAudits(t, b.db, time.June)
	// January: accounts 1 and 2, all removed: dropped. February: account
	// 2's row on the 10th is kept by its own horizon: batched. March:
	// account 3 keeps everything: batched. April: dropped. May: after
	// the horizon.
	monthly(t, b, clk, map[int64][]time.Time{
		1: {date(1, 5), date(1, 20), date(2, 5), date(3, 5), date(4, 5), date(4, 25), date(5, 10)},
		2: {date(1, 10), date(2, 10)},
		3: {date(3, 7)},
	})
	before := b.audits(t)

	var archive bytes.Buffer
	policy := audit.RetentionPolicy{Before: date(5, 1), Accounts: map[int64]audit.Retention{2: {Before: date(2, 1)}, 3: {}}}
	report, err := audit.Prune(b.ctx, b.db, policy, &audit.PruneOptions{Archive: &archive, BatchSize: 2})
	require.NoError(t, err)

	require.Equal(t, []string{"audits_p2026_01", "audits_p2026_04"}, report.Partitions)
	require.Equal(t, []string{"audits_p2026_02", "audits_p2026_03", "audits_p2026_05", "audits_p2026_06"}, partitionNames(t, b.db))
	var left int
	require.NoError(t, b.db.Raw(`SELECT COUNT(to_regclass(n)) FROM unnest(ARRAY['audits_p2026_01', 'audits_p2026_04']) AS n`).Scan(&left).Error)
	require.Zero(t, left, "the detached partitions are dropped")

	cutoff := map[int64]time.Time{1: date(5, 1), 2: date(2, 1)}
	removed, kept := prunedBy(before, cutoff)
	require.Equal(t, kept, auditIDs(b.audits(t)))
	require.Equal(t, int64(len(removed)), report.Removed)
	if diff := cmp.Diff(horizonsOf(removed, cutoff), b.horizons(t)); diff != "" {
		t.Fatalf("horizons (-want +got):\n%s", diff)
	}

	// The archive: the two partitions, then the batches of February and
	// March.
	var got []audit.Audit
	chunks, err := audit.ReadArchive(bytes.NewReader(archive.Bytes()), func(a audit.Audit) error {
		got = append(got, a)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, report.Archived, chunks)
	require.Equal(t, audit.ArchiveChunk{Partition: "audits_p2026_01", Count: 3, FirstID: before[0].ID, LastID: before[2].ID}, chunks[0])
	require.Equal(t, "audits_p2026_04", chunks[1].Partition)
	require.Equal(t, int64(2), chunks[1].Count)
	for _, c := range chunks[2:] {
		require.Empty(t, c.Partition)
	}
	slices.SortFunc(got, func(a, b audit.Audit) int { return int(a.ID - b.ID) })
	if diff := cmp.Diff(removed, got, cmpopts.IgnoreFields(audit.Audit{}, "TransactionID"), compactChanges(t)); diff != "" {
		t.Fatalf("archived rows (-want +got):\n%s", diff)
	}

	// Writers carry on, in the partitions left.
	clk.Set(date(5, 20))
	require.NoError(t, b.w().Create(&runbooks.Runbook{AccountID: 1, Name: "after the prune"}).Error)
}

// TestPruneFinishesAnInterruptedDetach leaves a partition detach-pending,
// as a DETACH ... CONCURRENTLY cancelled while it waits for older
// snapshots does, and checks that Prune finalizes and drops it.
func TestPruneFinishesAnInterruptedDetach(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("partitions are PostgreSQL's")
	}
	clk := &clock{now: date(1, 1)}
	b := setup(t, audit.Config{Now: clk.Now})
	partitionAudits(t, b.db, time.March)
	monthly(t, b, clk, map[int64][]time.Time{1: {date(1, 5), date(2, 5), date(3, 5)}})

	// A transaction whose snapshot predates the detach makes it wait once
	// it has marked the partition detach-pending; it is cancelled there.
	ctx := context.Background()
	sqlDB, err := b.db.DB()
	require.NoError(t, err)
	reader, err := sqlDB.Conn(ctx)
	require.NoError(t, err)
	defer reader.Close()
	_, err = reader.ExecContext(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ`)
	require.NoError(t, err)
	_, err = reader.ExecContext(ctx, `SELECT COUNT(*) FROM audits`)
	require.NoError(t, err)
	detacher, err := sqlDB.Conn(ctx)
	require.NoError(t, err)
	defer detacher.Close()
	var pid int
	require.NoError(t, detacher.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	detached := make(chan error, 1)
	go func() {
		_, err := detacher.ExecContext(ctx, `ALTER TABLE audits DETACH PARTITION audits_p2026_01 CONCURRENTLY`)
		detached <- err
	}()
	pending := func() bool {
		var p bool
		require.NoError(t, b.db.Raw(`SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'audits_p2026_01'::regclass`).Scan(&p).Error)
		return p
	}
	deadline := time.Now().Add(time.Minute)
	for !pending() {
		require.True(t, time.Now().Before(deadline), "the detach never marked the partition pending")
		time.Sleep(20 * time.Millisecond) // polling the catalog, not waiting for a guess
	}
	require.NoError(t, b.db.Exec(`SELECT pg_cancel_backend(?)`, pid).Error)
	require.Error(t, <-detached, "the detach was cancelled while it waited for the reader")
	_, err = reader.ExecContext(ctx, `COMMIT`)
	require.NoError(t, err)
	require.True(t, pending())

	report, err := audit.Prune(b.ctx, b.db, audit.RetentionPolicy{Before: date(2, 1)}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"audits_p2026_01"}, report.Partitions)
	require.Equal(t, []string{"audits_p2026_02", "audits_p2026_03"}, partitionNames(t, b.db))
	require.Len(t, b.audits(t), 2)
}
