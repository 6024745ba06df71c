package audit_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// counters reads the version counters: "type/id" → latest version.
func counters(t testing.TB, db *gorm.DB) map[string]int64 {
	t.Helper()
	var rows []struct {
		AuditableType, AuditableID string
		Version                    int64
	}
	require.NoError(t, db.Raw(`SELECT auditable_type, auditable_id, version FROM audit_versions`).Scan(&rows).Error)
	out := map[string]int64{}
	for _, r := range rows {
		out[r.AuditableType+"/"+r.AuditableID] = r.Version
	}
	return out
}

// versionsOf lists the versions of a record's audit rows, in id order.
func versionsOf(t testing.TB, b *bundle, typ, id string) []int {
	t.Helper()
	var v []int
	require.NoError(t, b.db.Model(&audit.Audit{}).Where("auditable_type = ? AND auditable_id = ?", typ, id).
		Order("id").Pluck("version", &v).Error)
	return v
}

// TestMigrateSeedsTheVersionCountersOfAnUpgradedDatabase writes a history,
// then puts the database back to how a release without version counters
// left it (no audit_versions; on PostgreSQL, the gormaudit_next_version
// function). Migrate creates the counters from the audit rows, drops the
// function, and the records continue their versions; running it again
// changes nothing.
func TestMigrateSeedsTheVersionCountersOfAnUpgradedDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	ctx := context.Background()
	rb := runbooks.Runbook{AccountID: 1, Name: "r"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "r2").Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "r3").Error)
	st := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s"}
	require.NoError(t, b.w().Create(&st).Error)
	require.NoError(t, b.w().Unscoped().Delete(&st).Error)
	want := map[string]int64{runbooks.TypeRunbook + "/" + rb.ID: 3, runbooks.TypeStep + "/" + st.ID: 2}
	require.Empty(t, cmp.Diff(want, counters(t, b.db)), "the writes kept the counters")

	require.NoError(t, b.db.Migrator().DropTable("audit_versions"))
	pg := dbtest.Dialect() == dbtest.Postgres
	if pg {
		require.NoError(t, b.db.Exec(`CREATE FUNCTION gormaudit_next_version(p_type text, p_id text) RETURNS bigint
			LANGUAGE sql AS $$ SELECT 1::bigint $$`).Error)
	}

	require.NoError(t, audit.Migrate(ctx, b.db))
	if d := cmp.Diff(want, counters(t, b.db)); d != "" {
		t.Fatalf("seeded counters (-want +got):\n%s", d)
	}
	if pg {
		var n int64
		require.NoError(t, b.db.Raw(`SELECT count(*) FROM pg_proc WHERE proname = 'gormaudit_next_version'
			AND pronamespace = current_schema()::regnamespace`).Scan(&n).Error)
		require.Zero(t, n, "Migrate drops the function older writers called")
	}

	require.NoError(t, b.w().Model(&rb).Update("name", "r4").Error)
	again := st // re-created after its destroy
	require.NoError(t, b.w().Create(&again).Error)
	require.Equal(t, []int{1, 2, 3, 4}, versionsOf(t, b, runbooks.TypeRunbook, rb.ID))
	require.Equal(t, []int{1, 2, 3}, versionsOf(t, b, runbooks.TypeStep, st.ID))

	require.NoError(t, audit.Migrate(ctx, b.db))
	want[runbooks.TypeRunbook+"/"+rb.ID], want[runbooks.TypeStep+"/"+st.ID] = 4, 3
	require.Empty(t, cmp.Diff(want, counters(t, b.db)), "a second Migrate keeps the counters")
}

// TestADisabledAccountsWritesTakeNoVersion writes records of an account
// that is not recorded, on the single-statement path (create, update) and
// on the portable one (an upsert): the gate comes before the counter, so
// no version is taken, and once the account is enabled each record's
// history starts at version 1.
func TestADisabledAccountsWritesTakeNoVersion(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{EnabledAccountsOnly: true})
	rb := runbooks.Runbook{AccountID: 3, Name: "fused"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "fused, renamed").Error)
	up := runbooks.Runbook{ID: "upserted", AccountID: 3, Name: "portable"}
	require.NoError(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&up).Error)
	require.Empty(t, counters(t, b.db))
	require.Empty(t, b.audits(t))

	_, err := audit.EnableAccount(context.Background(), b.db, 3)
	require.NoError(t, err)
	require.NoError(t, b.w().Model(&rb).Update("name", "recorded").Error)
	up.Name = "portable, recorded"
	require.NoError(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&up).Error)
	require.Equal(t, []int{1}, versionsOf(t, b, runbooks.TypeRunbook, rb.ID))
	require.Equal(t, []int{1}, versionsOf(t, b, runbooks.TypeRunbook, up.ID))
	require.Empty(t, cmp.Diff(map[string]int64{runbooks.TypeRunbook + "/" + rb.ID: 1, runbooks.TypeRunbook + "/" + up.ID: 1},
		counters(t, b.db)))
}
