package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// prunedHistory is the database of TestHistoryAcrossTheHorizon, before and
// after a prune of the rows created before day 5.
type prunedHistory struct {
	b   *bundle
	clk *clock
	// r: created on day 0, renamed on days 1, 2, 3 (versions 1-4), then
	// on days 7 and 8 (versions 5, 6).
	r *runbooks.Runbook
	// s: a step created on day 0 and never changed since: every row of it
	// is pruned.
	s *runbooks.Step
	// n: created on day 6, after the horizon, renamed on day 7.
	n *runbooks.Runbook
	// l: created on day 0 and renamed 9 times that day (versions 1-10),
	// then 20 times on day 6 (versions 11-30).
	l *runbooks.Runbook
}

func seedPrunedHistory(t *testing.T) *prunedHistory {
	t.Helper()
	clk := &clock{now: day0}
	h := &prunedHistory{b: setup(t, audit.Config{Now: clk.Now}), clk: clk}
	at := func(d int, hour int) { clk.Set(day(d).Add(time.Duration(hour) * time.Hour)) }
	w := h.b.w()
	at(0, 1)
	h.r = &runbooks.Runbook{AccountID: 1, Name: "day 0"}
	require.NoError(t, w.Create(h.r).Error)
	h.s = &runbooks.Step{AccountID: 1, RunbookID: h.r.ID, Name: "Page the on-call"}
	require.NoError(t, w.Create(h.s).Error)
	h.l = &runbooks.Runbook{AccountID: 1, Name: "l 1"}
	require.NoError(t, w.Create(h.l).Error)
	for v := 2; v <= 10; v++ {
		at(0, 1+v)
		require.NoError(t, w.Model(h.l).Update("name", fmt.Sprintf("l %d", v)).Error)
	}
	for _, d := range []int{1, 2, 3} {
		at(d, 12)
		require.NoError(t, w.Model(h.r).Update("name", fmt.Sprintf("day %d", d)).Error)
	}
	at(6, 0)
	h.n = &runbooks.Runbook{AccountID: 1, Name: "new"}
	require.NoError(t, w.Create(h.n).Error)
	for v := 11; v <= 30; v++ {
		at(6, v-10)
		require.NoError(t, w.Model(h.l).Update("name", fmt.Sprintf("l %d", v)).Error)
	}
	for _, d := range []int{7, 8} {
		at(d, 12)
		require.NoError(t, w.Model(h.r).Update("name", fmt.Sprintf("day %d", d)).Error)
	}
	at(7, 13)
	require.NoError(t, w.Model(h.n).Update("name", "renamed").Error)
	return h
}

// stateOpts compares states on what they say, not on the model behind them.
var stateOpts = cmpopts.IgnoreUnexported(audit.State{})

func requirePruned(t *testing.T, err error, what string) *audit.HistoryError {
	t.Helper()
	require.ErrorIs(t, err, audit.ErrHistoryGap, what)
	var he *audit.HistoryError
	require.ErrorAs(t, err, &he, what)
	require.NotNil(t, he.Horizon, "%s: the error names the horizon", what)
	require.Equal(t, int64(1), he.Horizon.AccountID, what)
	require.True(t, he.Horizon.Before.Equal(day(5)), what)
	return he
}

func TestHistoryAcrossTheHorizon(t *testing.T) {
	t.Parallel()
	h := seedPrunedHistory(t)
	b, ctx := h.b, h.b.ctx
	rT, sT := runbooks.TypeRunbook, runbooks.TypeStep

	// What history says before the prune, to compare with after it.
	stateAt := func(typ, id string, v int) *audit.State {
		s, err := audit.StateAt(ctx, b.db, typ, id, v, nil)
		require.NoError(t, err)
		return s
	}
	asOf := func(typ, id string, at time.Time) *audit.State {
		s, err := audit.StateAsOf(ctx, b.db, typ, id, at, nil)
		require.NoError(t, err)
		return s
	}
	rV5, rDay6, sDay6, l12 := stateAt(rT, h.r.ID, 5), asOf(rT, h.r.ID, day(6)), asOf(sT, h.s.ID, day(6)), stateAt(rT, h.l.ID, 12)
	require.Equal(t, 4, rDay6.Version)
	require.Equal(t, "day 3", string(rDay6.Attributes["name"][1:6]))
	rowsBefore := b.auditsOf(t, rT, h.r.ID)

	report, err := audit.Prune(ctx, b.db, audit.RetentionPolicy{Before: day(5)}, nil)
	require.NoError(t, err)
	require.Equal(t, int64(4+1+10), report.Removed, "r's versions 1-4, s's create and l's versions 1-10")
	hz, ok, err := audit.AccountHorizon(ctx, b.db, 1)
	require.NoError(t, err)
	require.True(t, ok)

	// Before the horizon: a gap, whichever way the point is named.
	_, err = audit.StateAt(ctx, b.db, rT, h.r.ID, 3, nil)
	requirePruned(t, err, "StateAt a pruned version")
	_, err = audit.StateAt(ctx, b.db, rT, h.l.ID, 8, nil)
	requirePruned(t, err, "StateAt a pruned version of a long history")
	_, err = audit.StateAsOf(ctx, b.db, rT, h.r.ID, day(4), nil)
	requirePruned(t, err, "StateAsOf before the horizon")
	_, err = audit.StateAsOf(ctx, b.db, sT, h.s.ID, day(4), nil)
	requirePruned(t, err, "StateAsOf before the horizon, every row pruned")
	_, err = audit.StateAt(ctx, b.db, sT, h.s.ID, 1, nil)
	requirePruned(t, err, "StateAt a version of a record whose every row was pruned")
	_, err = audit.Diff(ctx, b.db, rT, h.r.ID, 3, 6, nil)
	requirePruned(t, err, "Diff from a pruned version")
	_, err = audit.StatesAfterAudit(ctx, b.db, []audit.Ref{{Type: rT, ID: h.r.ID}}, rowsBefore[1].ID, nil)
	requirePruned(t, err, "StatesAfterAudit a pruned row")

	// After the horizon: rebuilt backward from the current row.
	if diff := cmp.Diff(rV5, stateAt(rT, h.r.ID, 5), stateOpts); diff != "" {
		t.Fatalf("StateAt version 5 (-before +after):\n%s", diff)
	}
	// l's version 12 was replayed forward from the create before; now
	// that the create is gone it is walked back from the current row.
	if diff := cmp.Diff(l12, stateAt(rT, h.l.ID, 12), stateOpts); diff != "" {
		t.Fatalf("StateAt version 12 (-before +after):\n%s", diff)
	}
	// Day 6 lies after the horizon but before r's first row left: the
	// state after version 4, whose row (and moment) is gone.
	want := *rDay6
	want.At = time.Time{}
	if diff := cmp.Diff(&want, asOf(rT, h.r.ID, day(6)), stateOpts); diff != "" {
		t.Fatalf("StateAsOf day 6 (-before +after):\n%s", diff)
	}
	states, err := audit.StatesAfterAudit(ctx, b.db, []audit.Ref{{Type: rT, ID: h.r.ID}}, hz.ThroughID, nil)
	require.NoError(t, err)
	if diff := cmp.Diff(&want, states[0], stateOpts); diff != "" {
		t.Fatalf("StatesAfterAudit the horizon's last id (-before +after):\n%s", diff)
	}
	// s has no row left; after the horizon it is its current row, at the
	// version its counter holds.
	gotS := asOf(sT, h.s.ID, day(6))
	require.True(t, gotS.Exists)
	require.Equal(t, 1, gotS.Version)
	require.Equal(t, sDay6.Attributes, gotS.Attributes)
	_, err = audit.StateAt(ctx, b.db, sT, h.s.ID, 2, nil)
	require.ErrorIs(t, err, audit.ErrVersionNotFound, "a version never recorded is still not found")
	// n was created after the horizon: its whole history is there, and
	// before its create it did not exist.
	gotN := asOf(rT, h.n.ID, day(2))
	require.Equal(t, 0, gotN.Version)
	require.False(t, gotN.Exists)
}

func TestRevertAcrossTheHorizon(t *testing.T) {
	t.Parallel()
	h := seedPrunedHistory(t)
	b, ctx := h.b, h.b.ctx
	rT := runbooks.TypeRunbook
	rRows := b.auditsOf(t, rT, h.r.ID)
	_, err := audit.Prune(ctx, b.db, audit.RetentionPolicy{Before: day(5)}, nil)
	require.NoError(t, err)
	rows := b.audits(t)

	err = audit.Revert(ctx, b.db, rT, h.r.ID, 2, nil)
	requirePruned(t, err, "Revert to a pruned version")
	err = audit.RevertAsOf(ctx, b.db, rT, h.r.ID, day(2), nil)
	requirePruned(t, err, "RevertAsOf before the horizon")
	err = runbooks.Revert(ctx, b.db, h.r.ID, day(4), nil)
	requirePruned(t, err, "a runbook's revert before the horizon")
	err = runbooks.RevertToVersion(ctx, b.db, h.r.ID, 2, nil)
	requirePruned(t, err, "a runbook's revert to a pruned version")
	err = runbooks.RevertToAudit(ctx, b.db, h.r.ID, rRows[1].ID, nil)
	requirePruned(t, err, "a runbook's revert to a pruned audit row")
	err = runbooks.RevertToAudit(ctx, b.db, h.r.ID, rows[len(rows)-1].ID, nil)
	require.ErrorIs(t, err, runbooks.ErrAuditNotInRunbook, "another record's row, still there")
	if diff := cmp.Diff(rows, b.audits(t)); diff != "" {
		t.Fatalf("a refused revert wrote (-before +after):\n%s", diff)
	}

	// After the horizon the revert works, to a state whose row is gone.
	h.clk.Set(day(9))
	var plan audit.Plan
	require.NoError(t, runbooks.Revert(ctx, b.db, h.r.ID, day(6), &audit.RevertOptions{Plan: &plan}))
	var got runbooks.Runbook
	require.NoError(t, b.db.Take(&got, "id = ?", h.r.ID).Error)
	require.Equal(t, "day 3", got.Name)
	require.Len(t, plan.Records, 1)
	require.Equal(t, 4, plan.Records[0].Version)
	last := b.auditsOf(t, rT, h.r.ID)
	require.Equal(t, 7, last[len(last)-1].Version, "versions continue after the prune")

	// So do those of a record whose every row was pruned.
	require.NoError(t, b.w().Model(h.s).Update("name", "Page the incident commander").Error)
	rows = b.auditsOf(t, runbooks.TypeStep, h.s.ID)
	require.Len(t, rows, 1)
	require.Equal(t, 2, rows[0].Version)
	state, err := audit.StateAt(ctx, b.db, runbooks.TypeStep, h.s.ID, 2, nil)
	require.NoError(t, err)
	require.Equal(t, `"Page the incident commander"`, string(state.Attributes["name"]))
	_, err = audit.StateAt(ctx, b.db, runbooks.TypeStep, h.s.ID, 1, nil)
	requirePruned(t, err, "the pruned create")
}
