package audit_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// requireGap requires err to be a *audit.HistoryError matching
// audit.ErrHistoryGap, and returns it.
func requireGap(t testing.TB, err error) *audit.HistoryError {
	t.Helper()
	require.ErrorIs(t, err, audit.ErrHistoryGap)
	var he *audit.HistoryError
	require.ErrorAs(t, err, &he)
	return he
}

// TestHistoryGapIsReported (issue 9, finding 10): disable, edit, enable
// again; every rebuild that would cross the period without audit rows is
// refused with ErrHistoryGap naming the period, and nothing is written.
func TestHistoryGapIsReported(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{EnabledAccountsOnly: true})
	ctx := b.ctx
	_, err := audit.EnableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	rb := runbooks.Runbook{AccountID: 1, Name: "v1"}
	require.NoError(t, b.w().Create(&rb).Error)                     // version 1
	require.NoError(t, b.w().Model(&rb).Update("name", "v2").Error) // version 2
	off, err := audit.DisableAccount(ctx, b.db, 1)                  // the gap opens
	require.NoError(t, err)
	require.NoError(t, b.w().Model(&rb).Update("description", "unseen").Error)

	// While the account is off, even the latest version is unknown now.
	he := requireGap(t, stateAt(b, rb.ID, 2))
	require.Empty(t, cmp.Diff(&audit.AccountGap{AccountID: 1, From: *off.DisabledAt}, he.Gap, gapOpts))

	on, err := audit.EnableAccount(ctx, b.db, 1) // the gap closes
	require.NoError(t, err)
	require.NoError(t, b.w().Model(&rb).Update("name", "v3").Error) // version 3
	wantGap := &audit.AccountGap{AccountID: 1, From: *off.DisabledAt, To: &on.EnabledAt}
	before := b.audits(t)
	var row runbooks.Runbook
	require.NoError(t, b.db.Take(&row, "id = ?", rb.ID).Error)

	refs := []audit.Ref{{Type: runbooks.TypeRunbook, ID: rb.ID}}
	v1 := before[0]
	for name, err := range map[string]error{
		"StateAt": stateAt(b, rb.ID, 1),
		"StateAsOf": func() error {
			_, err := audit.StateAsOf(ctx, b.db, runbooks.TypeRunbook, rb.ID, v1.CreatedAt, nil)
			return err
		}(),
		"StatesAfterAudit":    func() error { _, err := audit.StatesAfterAudit(ctx, b.db, refs, v1.ID, nil); return err }(),
		"Diff":                func() error { _, err := audit.Diff(ctx, b.db, runbooks.TypeRunbook, rb.ID, 1, 3, nil); return err }(),
		"Revert":              audit.Revert(ctx, b.db, runbooks.TypeRunbook, rb.ID, 1, nil),
		"Revert dry run":      audit.Revert(ctx, b.db, runbooks.TypeRunbook, rb.ID, 2, &audit.RevertOptions{DryRun: true, Plan: &audit.Plan{}}),
		"RevertAllAfterAudit": audit.RevertAllAfterAudit(ctx, b.db, refs, v1.ID, nil),
		"runbook revert":      runbooks.RevertToVersion(ctx, b.db, rb.ID, 1, nil),
	} {
		he := requireGap(t, err)
		require.Empty(t, cmp.Diff(wantGap, he.Gap, gapOpts), name)
		require.Contains(t, err.Error(), "account 1 was not recorded from", name)
	}
	require.Equal(t, before, b.audits(t), "nothing written")
	var after runbooks.Runbook
	require.NoError(t, b.db.Take(&after, "id = ?", rb.ID).Error)
	require.Empty(t, cmp.Diff(row, after))

	// After the gap, the history is whole again.
	st, err := audit.StateAt(ctx, b.db, runbooks.TypeRunbook, rb.ID, 3, nil)
	require.NoError(t, err)
	require.Equal(t, `"unseen"`, string(st.Attributes["description"]))
}

// A gap before a record existed, or before the point rebuilt, does not
// matter; a history that starts late (the record existed before its
// account was first enabled) is not a gap either.
func TestHistoryGapsThatDoNotMatter(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{EnabledAccountsOnly: true})
	ctx := b.ctx
	early := runbooks.Runbook{AccountID: 1, Name: "before enabling"}
	require.NoError(t, b.w().Create(&early).Error) // not recorded: the account was never enabled
	_, err := audit.EnableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	require.NoError(t, b.w().Model(&early).Update("name", "late v1").Error)
	st, err := audit.StateAsOf(ctx, b.db, runbooks.TypeRunbook, early.ID, time.Time{}, nil)
	require.NoError(t, err, "a late start is not a gap")
	require.Equal(t, `"before enabling"`, string(st.Attributes["name"]))

	_, err = audit.DisableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	_, err = audit.EnableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	later := runbooks.Runbook{AccountID: 1, Name: "created after the gap"}
	require.NoError(t, b.w().Create(&later).Error)
	require.NoError(t, b.w().Model(&later).Update("name", "renamed").Error)

	st, err = audit.StateAt(ctx, b.db, runbooks.TypeRunbook, later.ID, 1, nil)
	require.NoError(t, err)
	require.Equal(t, `"created after the gap"`, string(st.Attributes["name"]))
	st, err = audit.StateAsOf(ctx, b.db, runbooks.TypeRunbook, later.ID, time.Time{}, nil)
	require.NoError(t, err, "the record did not exist during the gap")
	require.False(t, st.Exists)
	require.NoError(t, audit.Revert(ctx, b.db, runbooks.TypeRunbook, later.ID, 1, nil))

	_, err = audit.StateAt(ctx, b.db, runbooks.TypeRunbook, early.ID, 1, nil)
	requireGap(t, err) // the early record existed during the gap
}

// TestCurrentRowUnexplainedIsAGap: a change made without an audit row (raw
// SQL) leaves the current row different from what the last audit row says;
// no earlier state can be trusted, and the record cannot be reverted.
func TestCurrentRowUnexplainedIsAGap(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	rb := runbooks.Runbook{AccountID: 1, Name: "v1"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "v2").Error)
	require.NoError(t, b.db.Exec("UPDATE runbooks SET name = ? WHERE id = ?", "raw", rb.ID).Error)

	he := requireGap(t, stateAt(b, rb.ID, 1))
	require.Equal(t, 2, he.Version)
	require.Contains(t, he.Error(), `name is "raw", not "v2"`)
	before := b.audits(t)
	requireGap(t, audit.Revert(b.ctx, b.db, runbooks.TypeRunbook, rb.ID, 1, nil))
	require.Equal(t, before, b.audits(t), "nothing written")

	// A row removed without a destroy audit.
	gone := runbooks.Runbook{AccountID: 1, Name: "gone"}
	require.NoError(t, b.w().Create(&gone).Error)
	require.NoError(t, b.db.Exec("DELETE FROM runbooks WHERE id = ?", gone.ID).Error)
	requireGap(t, stateAt(b, gone.ID, 1))

	// A discarded row undiscarded without an audit row.
	back := runbooks.Runbook{AccountID: 1, Name: "back"}
	require.NoError(t, b.w().Create(&back).Error)
	require.NoError(t, b.w().Delete(&back).Error)
	_, err := audit.StateAt(b.ctx, b.db, runbooks.TypeRunbook, back.ID, 1, nil)
	require.NoError(t, err, "a discarded row fits its destroy")
	require.NoError(t, b.db.Exec("UPDATE runbooks SET discarded_at = NULL WHERE id = ?", back.ID).Error)
	requireGap(t, stateAt(b, back.ID, 1))
}

// gapOpts compares gaps on what they name, whatever the time zone they
// were read back in.
var gapOpts = cmp.Options{
	cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ID" }, cmp.Ignore()),
	cmp.Transformer("utc", func(t time.Time) time.Time { return t.UTC() }),
}

func stateAt(b *bundle, id string, version int) error {
	_, err := audit.StateAt(b.ctx, b.db, runbooks.TypeRunbook, id, version, nil)
	return err
}
