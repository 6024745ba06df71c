package audit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

var reverter = audit.Actor{ID: "5b7c7c1e-2c44-4a53-9d38-0d6a3a8c1f11", Type: "BotUser"}

func TestRevertUpdate(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	// Undiscard first, so that version 5 is a live row to revert.
	require.NoError(t, b.w().Unscoped().Model(&runbooks.Step{ID: step.ID}).Update("discarded_at", nil).Error) // v5
	ctx := audit.WithActor(b.ctx, reverter)

	require.NoError(t, audit.Revert(ctx, b.db, runbooks.TypeStep, step.ID, 1, nil))
	requireStep(t, snaps[1], loadStep(t, b.db, step.ID))

	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 6)
	last := rows[5]
	require.Equal(t, audit.ActionUpdate, last.Action)
	require.Equal(t, 6, last.Version)
	require.Equal(t, "revert to version 1", last.Comment)
	require.Equal(t, reverter.ID, last.UserID)
	require.Equal(t, reverter.Type, last.UserType)
	jsontest.RequireEqual(t, map[string]any{
		"name":       []any{"Page secondary", "Page primary"},
		"position":   []any{3, 0},
		"config":     []any{map[string]any{"team": "db", "nested": map[string]any{"a": []any{1, 2}}}, map[string]any{"team": "sre", "escalate": true}},
		"action_id":  []any{nil, "95facc8b-be6f-4d71-90af-f13c53126de6"},
		"repeats_at": []any{"2026-05-01T08:30:00.123456Z", nil},
	}, last.AuditedChanges)

	// The revert is history too: version 6 equals version 1.
	diff, err := audit.Diff(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, 6, nil)
	require.NoError(t, err)
	require.Empty(t, diff)

	// Reverting to the current state writes nothing.
	require.NoError(t, audit.Revert(ctx, b.db, runbooks.TypeStep, step.ID, 6, nil))
	require.NoError(t, audit.Revert(ctx, b.db, runbooks.TypeStep, step.ID, 1, nil))
	require.Len(t, b.auditsOf(t, runbooks.TypeStep, step.ID), 6)
}

func TestRevertComment(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, _ := histFixture(t, b)
	at := b.auditsOf(t, runbooks.TypeStep, step.ID)[1].CreatedAt

	ctx := audit.WithComment(b.ctx, "INC-42 rollback")
	require.NoError(t, audit.RevertAsOf(ctx, b.db, runbooks.TypeStep, step.ID, at, nil))
	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Equal(t, "INC-42 rollback (revert to "+at.UTC().Format(time.RFC3339Nano)+")", rows[len(rows)-1].Comment)

	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, &audit.RevertOptions{Comment: "put back"}))
	rows = b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Equal(t, "put back", rows[len(rows)-1].Comment)
}

func TestRevertRestoresDiscarded(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b) // v4 discarded it

	var plan audit.Plan
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, &audit.RevertOptions{Plan: &plan}))
	got := loadStep(t, b.db, step.ID)
	require.False(t, got.DiscardedAt.Valid)
	require.Equal(t, step.ID, got.ID, "same primary key")
	requireStep(t, snaps[3], got)

	var visible runbooks.Step
	require.NoError(t, b.db.Where("id = ?", step.ID).Take(&visible).Error, "default scope sees it again")

	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 5)
	require.Equal(t, audit.ActionUpdate, rows[4].Action)
	require.Equal(t, []string{"discarded_at"}, keys(rows[4].AuditedChanges))
	require.Len(t, plan.Records, 1)
	require.Equal(t, audit.ActionUpdate, plan.Records[0].Action)
	require.Equal(t, 3, plan.Records[0].Version)
}

func TestRevertRestoresHardDeleted(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	require.NoError(t, b.w().Unscoped().Delete(&runbooks.Step{ID: step.ID}).Error) // v5

	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, nil))
	got := loadStep(t, b.db, step.ID)
	require.Equal(t, step.ID, got.ID, "re-inserted with the same primary key")
	requireStep(t, snaps[2], got)

	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 6)
	require.Equal(t, audit.ActionCreate, rows[5].Action)
	require.Equal(t, 6, rows[5].Version, "versions continue")
	require.Equal(t, "revert to version 2", rows[5].Comment)

	// Reverting to the destroy removes it again.
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 5, nil))
	got = loadStep(t, b.db, step.ID)
	require.True(t, got.DiscardedAt.Valid, "a model with a soft-delete column is discarded, not deleted")
	require.Equal(t, audit.ActionDestroy, b.auditsOf(t, runbooks.TypeStep, step.ID)[6].Action)
}

func TestRevertDryRun(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	before := b.audits(t)

	var plan audit.Plan
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{DryRun: true, Plan: &plan}))
	require.Len(t, b.audits(t), len(before), "a dry run writes nothing")
	requireStep(t, snaps[4], loadStep(t, b.db, step.ID))

	require.Len(t, plan.Records, 1)
	rp := plan.Records[0]
	require.Equal(t, audit.Ref{Type: runbooks.TypeStep, ID: step.ID}, rp.Ref)
	require.Equal(t, audit.ActionUpdate, rp.Action)
	require.Equal(t, 2, rp.Version)
	jsontest.RequireEqual(t, map[string]any{
		"position":     []any{3, 0},
		"config":       []any{map[string]any{"team": "db", "nested": map[string]any{"a": []any{1, 2}}}, map[string]any{"team": "sre", "escalate": true}},
		"action_id":    []any{nil, "95facc8b-be6f-4d71-90af-f13c53126de6"},
		"repeats_at":   []any{"2026-05-01T08:30:00.123456Z", nil},
		"discarded_at": []any{snaps[4].DiscardedAt.Time.UTC().Format(time.RFC3339Nano), nil},
	}, rp.Changes)

	// The real revert writes exactly what the dry run announced.
	var done audit.Plan
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{Plan: &done}))
	jsontest.RequireEqual(t, plan, done)
	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	jsontest.RequireEqual(t, plan.Records[0].Changes, rows[len(rows)-1].AuditedChanges)

	// A dry run of a hard-deleted record previews the re-insert.
	require.NoError(t, b.w().Unscoped().Delete(&runbooks.Step{ID: step.ID}).Error)
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, &audit.RevertOptions{DryRun: true, Plan: &plan}))
	require.Equal(t, audit.ActionCreate, plan.Records[0].Action)
	jsontest.RequireEqual(t, []any{nil, "Page primary"}, plan.Records[0].Changes["name"])
}

// Redacted columns have no past values: a revert keeps their current values
// and says so.
func TestRevertKeepsRedactedColumns(t *testing.T) {
	t.Parallel()
	models := runbooks.Models()
	models[1].Redact = []string{"name"}
	b, _ := histSetup(t, audit.Config{Models: models})
	step, snaps := histFixture(t, b)

	st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, nil)
	require.NoError(t, err)
	jsontest.RequireEqual(t, audit.RedactedValue, st.Attributes["name"])

	var plan audit.Plan
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, &audit.RevertOptions{Plan: &plan}))
	require.Equal(t, []string{"name"}, plan.Records[0].Redacted)
	require.NotContains(t, plan.Records[0].Changes, "name")
	want := snaps[1]
	want.Name = "Page secondary" // kept
	requireStep(t, want, loadStep(t, b.db, step.ID))

	// Unchanged since the version: nothing to report.
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, &audit.RevertOptions{Plan: &plan}))
	require.Empty(t, plan.Records[0].Redacted)
}

func keys(c audit.Changes) []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}
