package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// partition is one partition of the audits table as the catalog holds it.
type partition struct {
	Name     string
	From, To time.Time
}

// partitions lists the partitions of the audits table by name, with
// their bounds (zero for MINVALUE and MAXVALUE).
func partitions(t testing.TB, db *gorm.DB) []partition {
	t.Helper()
	var rows []struct {
		Name     string
		From, To *time.Time
	}
	require.NoError(t, db.Raw(`SELECT c.relname AS name,
			(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS "from",
			(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS "to"
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass('audits') ORDER BY c.relname`).Scan(&rows).Error)
	out := make([]partition, len(rows))
	for i, r := range rows {
		out[i].Name = r.Name
		if r.From != nil {
			out[i].From = r.From.UTC()
		}
		if r.To != nil {
			out[i].To = r.To.UTC()
		}
	}
	return out
}

// months returns the monthly partitions from the month of first to the
// month of last, as Maintain names and bounds them.
func months(first, last time.Time) []partition {
	var out []partition
	for m := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(last); m = m.AddDate(0, 1, 0) {
		out = append(out, partition{Name: "audits_p" + m.Format("2006_01"), From: m, To: m.AddDate(0, 1, 0)})
	}
	return out
}

// dropAudits drops the audits table whatever its layout, so that a test
// can lay it out itself.
func dropAudits(t testing.TB, db *gorm.DB) {
	t.Helper()
	require.NoError(t, db.Exec(`DROP TABLE audits CASCADE`).Error)
}

// relkind is the kind of the audits table: "r" plain, "p" partitioned.
func relkind(t testing.TB, db *gorm.DB) string {
	t.Helper()
	var k string
	require.NoError(t, db.Raw(`SELECT relkind::text FROM pg_class WHERE oid = to_regclass('audits')`).Scan(&k).Error)
	return k
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func requirePostgres(t *testing.T) {
	t.Helper()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has no partitioned tables: the audits table is one table (see TestPartitionOnSQLiteIsRefused)")
	}
}

func TestPartitionOnSQLiteIsRefused(t *testing.T) {
	if dbtest.Dialect() != dbtest.SQLite {
		t.Skip("PostgreSQL partitions the audits table (see TestPartitionCreatesMonthlyPartitionsAndMaintainKeepsAhead)")
	}
	t.Parallel()
	b := setup(t, audit.Config{})
	ctx := context.Background()
	require.ErrorIs(t, audit.Partition(ctx, b.db, nil), audit.ErrPartitionUnsupported)
	require.NoError(t, audit.Maintain(ctx, b.db, nil), "nothing to maintain")
	require.NoError(t, b.w().Create(&runbooks.Runbook{AccountID: 1, Name: "r"}).Error)
	require.Len(t, b.audits(t), 1)
}

// TestPartitionCreatesMonthlyPartitionsAndMaintainKeepsAhead lays the
// audits table out partitioned with a clock in 2031: the current month and
// the next three get a partition each, bounded by UTC months. Maintain
// later adds the months that came into its window, creates nothing when
// run again or concurrently, and Migrate keeps the table partitioned and
// adds the months of the real clock.
func TestPartitionCreatesMonthlyPartitionsAndMaintainKeepsAhead(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, audit.Migrate(ctx, db))
	dropAudits(t, db)

	jan := time.Date(2031, 1, 15, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)) // 2031-01-16 04:30 UTC
	require.NoError(t, audit.Partition(ctx, db, &audit.PartitionOptions{MaintainOptions: audit.MaintainOptions{Now: fixedNow(jan)}}))
	require.Equal(t, "p", relkind(t, db))
	want := months(jan.UTC(), jan.UTC().AddDate(0, 3, 0))
	require.Empty(t, cmp.Diff(want, partitions(t, db)), "January to April 2031")

	mar := audit.MaintainOptions{Now: fixedNow(time.Date(2031, 3, 2, 0, 0, 0, 0, time.UTC))}
	require.NoError(t, audit.Maintain(ctx, db, &mar))
	want = months(jan.UTC(), time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC))
	require.Empty(t, cmp.Diff(want, partitions(t, db)), "May and June added")
	require.NoError(t, audit.Maintain(ctx, db, &mar))
	require.NoError(t, audit.Maintain(ctx, db, &audit.MaintainOptions{Now: mar.Now, MonthsAhead: -1}))
	require.NoError(t, audit.Partition(ctx, db, &audit.PartitionOptions{MaintainOptions: mar}))
	require.Empty(t, cmp.Diff(want, partitions(t, db)), "idempotent")

	aug := audit.MaintainOptions{Now: fixedNow(time.Date(2031, 8, 31, 23, 59, 59, 0, time.UTC)), MonthsAhead: 2}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = audit.Maintain(ctx, db, &aug) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "concurrent Maintain calls wait for each other")
	}
	want = append(want, months(time.Date(2031, 8, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 10, 1, 0, 0, 0, 0, time.UTC))...)
	require.Empty(t, cmp.Diff(want, partitions(t, db)), "August to October, once each; July is not in any window")

	require.NoError(t, audit.Migrate(ctx, db))
	require.Equal(t, "p", relkind(t, db), "Migrate keeps the layout")
	got := map[string]bool{}
	for _, p := range partitions(t, db) {
		got[p.Name] = true
	}
	for _, p := range months(time.Now().UTC(), time.Now().UTC().AddDate(0, audit.DefaultMonthsAhead, 0)) {
		require.True(t, got[p.Name], "Migrate runs Maintain: %s exists", p.Name)
	}
}

// TestPartitionedColumnsAreThePlainOnes compares the audits table as
// Partition creates it with the table gorm creates for the Audit model:
// the same columns, types, defaults and index names, the partitioned one
// keyed by (id, created_at) and its versions index not unique.
func TestPartitionedColumnsAreThePlainOnes(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, audit.Migrate(ctx, db))

	type column struct {
		Name, Type, Nullable string
		Length               *int
		Default              *string
	}
	type index struct{ Name, Def string }
	describe := func() ([]column, []index) {
		var cols []column
		require.NoError(t, db.Raw(`SELECT column_name AS name, data_type AS type, is_nullable AS nullable,
				character_maximum_length AS length, column_default AS "default"
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'audits'
			ORDER BY ordinal_position`).Scan(&cols).Error)
		var ixs []index
		require.NoError(t, db.Raw(`SELECT indexname AS name, regexp_replace(indexdef, ' ON .* USING ', ' ') AS def
			FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'audits' ORDER BY indexname`).Scan(&ixs).Error)
		return cols, ixs
	}

	dropAudits(t, db)
	require.NoError(t, db.AutoMigrate(&audit.Audit{}))
	plainCols, plainIdx := describe()
	dropAudits(t, db)
	require.NoError(t, audit.Partition(ctx, db, nil))
	partCols, partIdx := describe()

	require.Empty(t, cmp.Diff(plainCols, partCols), "columns (-plain +partitioned)")
	wantIdx := map[string]string{
		"audits_pkey":                  "CREATE UNIQUE INDEX audits_pkey btree (id, created_at)",
		"idx_audits_auditable_version": "CREATE INDEX idx_audits_auditable_version btree (auditable_type, auditable_id, version)",
	}
	for i, ix := range plainIdx {
		if want, ok := wantIdx[ix.Name]; ok {
			plainIdx[i].Def = want
		}
	}
	require.Empty(t, cmp.Diff(plainIdx, partIdx), "indexes (-plain, adjusted +partitioned)")
}

// TestAWriteWithNoPartitionFailsAndWritesNothing writes, at a moment no
// partition holds, on the single-statement path and on the portable one,
// and in a transaction that ignores the error and commits: each write
// fails with ErrNoPartition in a *WriteError, and neither the record, its
// audit row nor its version is left. Once Maintain has created the month,
// the same writes are recorded from version 1.
func TestAWriteWithNoPartitionFailsAndWritesNothing(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	later := time.Date(2035, 6, 1, 12, 0, 0, 0, time.UTC)
	b := setup(t, audit.Config{Now: fixedNow(later)})
	ctx := context.Background()
	dropAudits(t, b.db)
	require.NoError(t, audit.Partition(ctx, b.db, &audit.PartitionOptions{
		MaintainOptions: audit.MaintainOptions{Now: fixedNow(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))}}))

	requireNoPartition := func(name string, err error) {
		t.Helper()
		require.ErrorIs(t, err, audit.ErrNoPartition, name)
		var we *audit.WriteError
		require.ErrorAs(t, err, &we, name)
	}
	fused := runbooks.Runbook{ID: "fused", AccountID: 1, Name: "fused"}
	requireNoPartition("single statement", b.w().Create(&fused).Error)
	upsert := runbooks.Runbook{ID: "upsert", AccountID: 1, Name: "portable"}
	requireNoPartition("portable", b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&upsert).Error)
	ignored := runbooks.Runbook{ID: "ignored", AccountID: 1, Name: "error ignored"}
	err := b.w().Transaction(func(tx *gorm.DB) error {
		requireNoPartition("in a transaction", tx.Create(&ignored).Error)
		return nil // the caller commits anyway
	})
	require.Error(t, err, "PostgreSQL refuses to commit a transaction whose statement failed")

	var n int64
	require.NoError(t, b.db.Model(&runbooks.Runbook{}).Count(&n).Error)
	require.Zero(t, n, "no record written")
	require.Empty(t, b.audits(t))
	require.Empty(t, counters(t, b.db), "no version taken")

	require.NoError(t, audit.Maintain(ctx, b.db, &audit.MaintainOptions{Now: fixedNow(later)}))
	for _, rb := range []runbooks.Runbook{fused, ignored} {
		require.NoError(t, b.w().Create(&rb).Error)
	}
	require.NoError(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&upsert).Error)
	for _, id := range []string{"fused", "upsert", "ignored"} {
		require.Equal(t, []int{1}, versionsOf(t, b, runbooks.TypeRunbook, id), id)
	}
	var where string
	require.NoError(t, b.db.Raw(`SELECT DISTINCT tableoid::regclass::text FROM audits`).Scan(&where).Error)
	require.Equal(t, "audits_p2035_06", where)
}
