package runbooks_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// openWithClock is open with audit.Config.Now set to now (nil: the real
// clock, the default).
func openWithClock(t testing.TB, now func() time.Time) (*gorm.DB, context.Context) {
	t.Helper()
	e := fixture.Open(t, &fixture.Options{Config: audit.Config{Now: now}})
	return e.DB, e.Ctx
}

// TestRevertToVersionRightAfterCreate (issue 9, finding 11): with the real
// clock, a create and a rename back to back often share a millisecond;
// reverting to version 1 must undo the rename every time.
func TestRevertToVersionRightAfterCreate(t *testing.T) {
	t.Parallel()
	db, ctx := openWithClock(t, nil)
	w := db.WithContext(ctx)
	shared := 0
	for i := range 20 {
		rb := runbooks.Runbook{AccountID: 1, Name: "original"}
		require.NoError(t, w.Create(&rb).Error)
		require.NoError(t, w.Model(&rb).Update("name", "renamed").Error)
		require.NoError(t, runbooks.RevertToVersion(ctx, db, rb.ID, 1, nil), "try %d", i)
		var got runbooks.Runbook
		require.NoError(t, db.Take(&got, "id = ?", rb.ID).Error)
		require.Equal(t, "original", got.Name, "try %d", i)
		var stamps []time.Time
		require.NoError(t, db.Model(&audit.Audit{}).Where("auditable_id = ? AND version <= 2", rb.ID).
			Order("version").Pluck("created_at", &stamps).Error)
		if stamps[0].Equal(stamps[1]) {
			shared++
		}
	}
	t.Logf("%d of 20 create + rename pairs shared a millisecond", shared)
}

// TestRevertToVersionWithinOneMillisecond: every write shares one
// created_at; the runbook's versions still name exact points, with its
// steps as they were while it was at each version.
func TestRevertToVersionWithinOneMillisecond(t *testing.T) {
	t.Parallel()
	frozen := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	db, ctx := openWithClock(t, func() time.Time { return frozen })
	w := db.WithContext(ctx)
	rb := runbooks.Runbook{AccountID: 1, Name: "v1"} // runbook version 1
	require.NoError(t, w.Create(&rb).Error)
	step := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s1"}
	require.NoError(t, w.Create(&step).Error)
	require.NoError(t, w.Model(&step).Update("name", "s2").Error)
	require.NoError(t, w.Model(&rb).Update("name", "v2").Error) // runbook version 2
	require.NoError(t, w.Model(&step).Update("name", "s3").Error)
	require.NoError(t, w.Model(&rb).Update("name", "v3").Error) // runbook version 3
	other := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "added at v3", Position: 1}
	require.NoError(t, w.Create(&other).Error)

	type view struct {
		Runbook string
		Steps   []string // live steps' names
	}
	read := func() view {
		got := snapshot(t, db, rb.ID)
		v := view{Runbook: got.Name}
		for _, s := range got.Steps {
			v.Steps = append(v.Steps, s.Name)
		}
		return v
	}
	for _, c := range []struct {
		version int
		want    view
	}{
		{1, view{"v1", []string{"s2"}}},
		// Until the revert above wrote version 4.
		{3, view{"v3", []string{"s3", "added at v3"}}},
		{2, view{"v2", []string{"s3"}}},
	} {
		require.NoError(t, runbooks.RevertToVersion(ctx, db, rb.ID, c.version, nil))
		require.Empty(t, cmp.Diff(c.want, read()), "version %d (-want +got)", c.version)
	}

	// The latest version is the current state: nothing to write.
	var latest []int
	require.NoError(t, db.Model(&audit.Audit{}).Where("auditable_id = ?", rb.ID).Order("version DESC").Limit(1).
		Pluck("version", &latest).Error)
	var before, after int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&before).Error)
	require.NoError(t, runbooks.RevertToVersion(ctx, db, rb.ID, latest[0], nil))
	require.NoError(t, db.Model(&audit.Audit{}).Count(&after).Error)
	require.Equal(t, before, after)
	require.Empty(t, cmp.Diff(view{"v2", []string{"s3"}}, read()))
}

// TestRevertToAudit puts a runbook back right after one of its steps'
// audit rows, and refuses audit rows of other records.
func TestRevertToAudit(t *testing.T) {
	t.Parallel()
	frozen := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	db, ctx := openWithClock(t, func() time.Time { return frozen })
	w := db.WithContext(ctx)
	rb := runbooks.Runbook{AccountID: 1, Name: "rb"}
	require.NoError(t, w.Create(&rb).Error)
	step := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s1"}
	require.NoError(t, w.Create(&step).Error)
	require.NoError(t, w.Model(&step).Update("name", "s2").Error)
	require.NoError(t, w.Model(&step).Update("name", "s3").Error)
	elsewhere := runbooks.Runbook{AccountID: 1, Name: "another runbook"}
	require.NoError(t, w.Create(&elsewhere).Error)

	var rows []audit.Audit
	require.NoError(t, db.Order("id").Find(&rows).Error)
	n := len(rows)
	for _, id := range []int64{rows[n-1].ID, rows[n-1].ID + 1000} {
		err := runbooks.RevertToAudit(ctx, db, rb.ID, id, nil)
		require.ErrorIs(t, err, runbooks.ErrAuditNotInRunbook, "audit %d", id)
	}
	var count int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&count).Error)
	require.EqualValues(t, n, count, "nothing written")

	require.NoError(t, runbooks.RevertToAudit(ctx, db, rb.ID, rows[2].ID, nil)) // right after "s2"
	got := snapshot(t, db, rb.ID)
	require.Len(t, got.Steps, 1)
	require.Equal(t, "s2", got.Steps[0].Name)
	var last audit.Audit
	require.NoError(t, db.Order("id DESC").Take(&last).Error)
	require.Equal(t, "revert to audit "+strconv.FormatInt(rows[2].ID, 10), last.Comment)
}
