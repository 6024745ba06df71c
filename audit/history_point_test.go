package audit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestStatesAfterAuditWithinOneMillisecond (issue 9, finding 11): every
// write shares one created_at, so only the audit row id tells the states
// apart. Each audit row's id names exactly the states right after it.
func TestStatesAfterAuditWithinOneMillisecond(t *testing.T) {
	t.Parallel()
	frozen := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	b := setup(t, audit.Config{Now: func() time.Time { return frozen }})
	rb := runbooks.Runbook{AccountID: 1, Name: "n1"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "n2").Error)
	step := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s1"}
	require.NoError(t, b.w().Create(&step).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "n3").Error)
	require.NoError(t, b.w().Model(&step).Update("name", "s2").Error)
	require.NoError(t, b.w().Delete(&step).Error)

	rows := b.audits(t)
	require.Len(t, rows, 6)
	for _, r := range rows {
		require.Equal(t, frozen, r.CreatedAt.UTC(), "every row shares one millisecond")
	}
	refs := []audit.Ref{{Type: runbooks.TypeRunbook, ID: rb.ID}, {Type: runbooks.TypeStep, ID: step.ID}}
	type view struct {
		Runbook, Step string // name, "" when absent
		Discarded     bool
	}
	want := []view{{"n1", "", false}, {"n2", "", false}, {"n2", "s1", false}, {"n3", "s1", false}, {"n3", "s2", false}, {"n3", "s2", true}}
	for i, r := range rows {
		states, err := audit.StatesAfterAudit(b.ctx, b.db, refs, r.ID, nil)
		require.NoError(t, err)
		var got view
		var s runbooks.Step
		var rbState runbooks.Runbook
		require.NoError(t, states[0].Decode(&rbState))
		got.Runbook = rbState.Name
		if states[1].Exists {
			require.NoError(t, states[1].Decode(&s))
			got.Step, got.Discarded = s.Name, s.DiscardedAt.Valid
		}
		require.Empty(t, cmp.Diff(want[i], got), "after audit row %d (-want +got)", i+1)
	}

	// Before the first row: neither existed.
	states, err := audit.StatesAfterAudit(b.ctx, b.db, refs, rows[0].ID-1, nil)
	require.NoError(t, err)
	require.False(t, states[0].Exists)
	require.False(t, states[1].Exists)

	// The revert to a point names that point, and plans say what existed.
	var plan audit.Plan
	require.NoError(t, audit.RevertAllAfterAudit(b.ctx, b.db, refs, rows[1].ID, &audit.RevertOptions{DryRun: true, Plan: &plan}))
	require.Empty(t, cmp.Diff([]audit.RecordPlan{
		{Ref: refs[0], Version: 2, Exists: true, Action: audit.ActionUpdate,
			Changes: audit.Changes{"name": []byte(`["n3","n2"]`)}},
	}, plan.Records, cmp.Transformer("json", func(c audit.Changes) map[string]any { return decoded(t, c) })),
		"the step is discarded already: nothing to write, and absent at the point")
	require.NoError(t, audit.RevertAllAfterAudit(b.ctx, b.db, refs, rows[0].ID-1, &audit.RevertOptions{DryRun: true, Plan: &plan}))
	require.Len(t, plan.Records, 1)
	require.Equal(t, audit.ActionDestroy, plan.Records[0].Action)
	require.False(t, plan.Records[0].Exists, "the plan says the runbook was absent, not version 0")
	require.NoError(t, audit.RevertAllAfterAudit(b.ctx, b.db, refs, rows[1].ID, nil))
	var last audit.Audit
	require.NoError(t, b.db.Order("id DESC").Take(&last).Error)
	require.Equal(t, "revert to audit "+strconv.FormatInt(rows[1].ID, 10), last.Comment)
}
