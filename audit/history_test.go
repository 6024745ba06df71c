package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// histClock is an audit.Config.Now that moves one second forward on every
// reading, so that each write, and each moment a test notes, is distinct.
type histClock struct {
	mu  sync.Mutex
	now time.Time
}

func newHistClock() *histClock {
	return &histClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *histClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// histSetup is setup with the ticking clock.
func histSetup(t testing.TB, cfg audit.Config) (*bundle, *histClock) {
	t.Helper()
	clk := newHistClock()
	cfg.Now = clk.Now
	return setup(t, cfg), clk
}

// stepOpts compares steps on their audited columns only.
var stepOpts = cmp.Options{
	cmpopts.IgnoreFields(runbooks.Step{}, "CreatedAt", "UpdatedAt", "Rules", "Conditions"),
	// Audit rows keep microseconds, PostgreSQL's precision; gorm's soft
	// delete stamps SQLite rows with nanoseconds.
	// jsonb reformats documents.
	cmp.Transformer("json", func(j runbooks.JSON) any {
		var v any
		if len(j) > 0 && json.Unmarshal(j, &v) != nil {
			return string(j)
		}
		return v
	}),
	cmp.Transformer("µs", func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }),
}

// loadStep reads a step, discarded or not.
func loadStep(t testing.TB, db *gorm.DB, id string) runbooks.Step {
	t.Helper()
	var s runbooks.Step
	require.NoError(t, db.Unscoped().Where("id = ?", id).Take(&s).Error)
	return s
}

// decodeStep turns a state into a step.
func decodeStep(t testing.TB, st *audit.State) runbooks.Step {
	t.Helper()
	var s runbooks.Step
	require.NoError(t, st.Decode(&s))
	return s
}

func requireStep(t testing.TB, want, got runbooks.Step) {
	t.Helper()
	if d := cmp.Diff(want, got, stepOpts); d != "" {
		t.Fatalf("step mismatch (-want +got):\n%s", d)
	}
}

// histFixture creates a runbook and one step, then changes the step:
//
//	v1 create, v2 rename, v3 move and reconfigure, v4 discard.
//
// snaps[v] is the step as it was right after version v.
func histFixture(t testing.TB, b *bundle) (step runbooks.Step, snaps map[int]runbooks.Step) {
	t.Helper()
	rb := runbooks.Runbook{AccountID: 7, Name: "On-call"}
	require.NoError(t, b.w().Create(&rb).Error)
	step = runbooks.Step{AccountID: 7, RunbookID: rb.ID, Name: "Page primary", Position: 0,
		Config: runbooks.JSON(`{"team":"sre","escalate":true}`), DelayDuration: runbooks.Duration(5 * time.Minute),
		ActionID: ptr("95facc8b-be6f-4d71-90af-f13c53126de6")}
	require.NoError(t, b.w().Create(&step).Error)
	snaps = map[int]runbooks.Step{}
	snaps[1] = loadStep(t, b.db, step.ID)

	require.NoError(t, b.w().Model(&step).Update("name", "Page secondary").Error)
	snaps[2] = loadStep(t, b.db, step.ID)

	require.NoError(t, b.w().Model(&step).Updates(map[string]any{
		"position": 3, "config": runbooks.JSON(`{"team":"db","nested":{"a":[1,2]}}`), "action_id": nil,
		"repeats_at": time.Date(2026, 5, 1, 8, 30, 0, 123456000, time.UTC),
	}).Error)
	snaps[3] = loadStep(t, b.db, step.ID)

	require.NoError(t, b.w().Delete(&step).Error)
	snaps[4] = loadStep(t, b.db, step.ID)
	require.True(t, snaps[4].DiscardedAt.Valid)
	require.Len(t, b.auditsOf(t, runbooks.TypeStep, step.ID), 4)
	return step, snaps
}

func TestStateAtEveryVersion(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)

	for v := 1; v <= 4; v++ {
		st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, v, nil)
		require.NoError(t, err, "version %d", v)
		require.True(t, st.Exists)
		require.Equal(t, v, st.Version)
		require.True(t, st.At.Equal(rows[v-1].CreatedAt), "At is the version's created_at")
		require.Equal(t, int64(7), st.AccountID)
		requireStep(t, snaps[v], decodeStep(t, st))
	}
}

func TestStateAsOf(t *testing.T) {
	t.Parallel()
	b, clk := histSetup(t, audit.Config{})
	before := clk.Now()
	step, snaps := histFixture(t, b)
	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)

	st, err := audit.StateAsOf(b.ctx, b.db, runbooks.TypeStep, step.ID, before, nil)
	require.NoError(t, err)
	require.Equal(t, 0, st.Version)
	require.False(t, st.Exists, "before its create the step did not exist")
	require.Nil(t, st.Attributes)

	for v := 1; v <= 4; v++ {
		// At the version's own moment, and just before the next one.
		for _, at := range []time.Time{rows[v-1].CreatedAt, rows[v-1].CreatedAt.Add(999 * time.Millisecond)} {
			st, err := audit.StateAsOf(b.ctx, b.db, runbooks.TypeStep, step.ID, at, nil)
			require.NoError(t, err)
			require.Equal(t, v, st.Version, "as of %s", at)
			requireStep(t, snaps[v], decodeStep(t, st))
		}
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)

	got, err := audit.Diff(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, 3, nil)
	require.NoError(t, err)
	jsontest.RequireEqual(t, map[string]any{
		"name":       []any{"Page primary", "Page secondary"},
		"position":   []any{0, 3},
		"config":     []any{map[string]any{"team": "sre", "escalate": true}, map[string]any{"team": "db", "nested": map[string]any{"a": []any{1, 2}}}},
		"action_id":  []any{"95facc8b-be6f-4d71-90af-f13c53126de6", nil},
		"repeats_at": []any{nil, "2026-05-01T08:30:00.123456Z"},
	}, got)

	back, err := audit.Diff(b.ctx, b.db, runbooks.TypeStep, step.ID, 4, 3, nil)
	require.NoError(t, err)
	jsontest.RequireEqual(t, map[string]any{
		"discarded_at": []any{snaps[4].DiscardedAt.Time.UTC().Format(time.RFC3339Nano), nil},
	}, back)

	same, err := audit.Diff(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, 2, nil)
	require.NoError(t, err)
	require.Empty(t, same)
}

func TestStateOfHardDeletedRecord(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	require.NoError(t, b.w().Unscoped().Delete(&runbooks.Step{ID: step.ID}).Error) // v5
	require.Error(t, b.db.Unscoped().Where("id = ?", step.ID).Take(&runbooks.Step{}).Error)

	gone, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 5, nil)
	require.NoError(t, err)
	require.False(t, gone.Exists)

	for v := 1; v <= 4; v++ {
		st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, v, nil)
		require.NoError(t, err)
		require.True(t, st.Exists)
		requireStep(t, snaps[v], decodeStep(t, st))
	}
}

// Recording starts when an account is enabled: the step's history begins
// with updates, and its earlier states rebuild from the current row.
func TestStateWhenHistoryStartsLate(t *testing.T) {
	t.Parallel()
	b, clk := histSetup(t, audit.Config{EnabledAccountsOnly: true})
	rb := runbooks.Runbook{AccountID: 3, Name: "Legacy"}
	require.NoError(t, b.w().Create(&rb).Error)
	step := runbooks.Step{AccountID: 3, RunbookID: rb.ID, Name: "Old name", Position: 1}
	require.NoError(t, b.w().Create(&step).Error)
	original := loadStep(t, b.db, step.ID)
	require.Empty(t, b.audits(t))

	_, err := audit.EnableAccount(context.Background(), b.db, 3)
	require.NoError(t, err)
	enabled := clk.Now()
	require.NoError(t, b.w().Model(&step).Update("name", "New name").Error) // v1
	v1 := loadStep(t, b.db, step.ID)
	require.NoError(t, b.w().Model(&step).Update("position", 9).Error) // v2
	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 2)
	require.Equal(t, audit.ActionUpdate, rows[0].Action)

	st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, nil)
	require.NoError(t, err)
	requireStep(t, v1, decodeStep(t, st))

	// Before the first recorded version: the state recording began with.
	st, err = audit.StateAsOf(b.ctx, b.db, runbooks.TypeStep, step.ID, enabled, nil)
	require.NoError(t, err)
	require.Equal(t, 0, st.Version)
	require.True(t, st.Exists)
	requireStep(t, original, decodeStep(t, st))

	// And it can be written back.
	require.NoError(t, audit.RevertAsOf(b.ctx, b.db, runbooks.TypeStep, step.ID, enabled, nil))
	requireStep(t, original, loadStep(t, b.db, step.ID))
}

// drift rewrites the audited_changes of one audit row, as if it had been
// recorded under another version of the model.
func drift(t testing.TB, b *bundle, id string, version int, edit func(m map[string]json.RawMessage)) {
	t.Helper()
	var a audit.Audit
	require.NoError(t, b.db.Where("auditable_type = ? AND auditable_id = ? AND version = ?", runbooks.TypeStep, id, version).Take(&a).Error)
	edit(a.AuditedChanges)
	require.NoError(t, b.db.Model(&audit.Audit{}).Where("id = ?", a.ID).Update("audited_changes", a.AuditedChanges).Error)
}

func TestSchemaDrift(t *testing.T) {
	t.Parallel()
	t.Run("removed column", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		step, snaps := histFixture(t, b)
		// Version 3 also changed a column the model has since dropped.
		drift(t, b, step.ID, 3, func(m map[string]json.RawMessage) {
			m["legacy_priority"] = json.RawMessage(`["high","low"]`)
		})
		before := len(b.audits(t))

		_, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, nil)
		var de *audit.DriftError
		require.ErrorAs(t, err, &de)
		require.ErrorIs(t, err, audit.ErrSchemaDrift)
		require.Equal(t, []string{"legacy_priority"}, de.Removed)
		require.Empty(t, de.Added)
		require.Contains(t, err.Error(), "legacy_priority")

		err = audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, nil)
		require.ErrorIs(t, err, audit.ErrSchemaDrift)
		require.Len(t, b.audits(t), before, "nothing written")
		requireStep(t, snaps[4], loadStep(t, b.db, step.ID))

		// Versions after the drifted one do not need it.
		_, err = audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, nil)
		require.NoError(t, err)

		st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.ReadOptions{SkipSchemaDrift: true})
		require.NoError(t, err)
		require.Equal(t, []string{"legacy_priority"}, st.Skipped)
		requireStep(t, snaps[2], decodeStep(t, st))

		var plan audit.Plan
		require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{ReadOptions: audit.ReadOptions{SkipSchemaDrift: true}, Plan: &plan}))
		require.Len(t, plan.Records, 1)
		require.Equal(t, []string{"legacy_priority"}, plan.Records[0].Skipped)
		requireStep(t, snaps[2], loadStep(t, b.db, step.ID))
	})
	t.Run("column absent from history", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		step, snaps := histFixture(t, b)
		require.NoError(t, b.w().Unscoped().Delete(&runbooks.Step{ID: step.ID}).Error) // v5
		// The destroy was recorded before the model had "automatic".
		drift(t, b, step.ID, 5, func(m map[string]json.RawMessage) { delete(m, "automatic") })

		_, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 4, nil)
		var de *audit.DriftError
		require.ErrorAs(t, err, &de)
		require.Equal(t, []string{"automatic"}, de.Added)
		require.Empty(t, de.Removed)

		before := len(b.audits(t))
		require.ErrorIs(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, nil), audit.ErrSchemaDrift)
		require.Len(t, b.audits(t), before, "nothing written")

		var plan audit.Plan
		require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 3, &audit.RevertOptions{ReadOptions: audit.ReadOptions{SkipSchemaDrift: true}, Plan: &plan}))
		require.Len(t, plan.Records, 1)
		require.Equal(t, audit.ActionCreate, plan.Records[0].Action)
		require.Equal(t, []string{"automatic"}, plan.Records[0].Skipped)
		requireStep(t, snaps[3], loadStep(t, b.db, step.ID)) // automatic was false: its zero value
	})
}

func TestHistoryErrors(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, _ := histFixture(t, b)
	before := len(b.audits(t))
	stepBefore := loadStep(t, b.db, step.ID)
	eight := int64(8)

	cases := []struct {
		name    string
		typ, id string
		version int
		read    audit.ReadOptions
		is      error
		check   func(t *testing.T, err error)
	}{
		{name: "unknown type", typ: "Runbooks::Rule", id: step.ID, version: 1, is: audit.ErrNotFound,
			check: func(t *testing.T, err error) {
				var nf *audit.NotFoundError
				require.ErrorAs(t, err, &nf)
				require.True(t, nf.UnknownType)
			}},
		{name: "unknown record", typ: runbooks.TypeStep, id: "00000000-0000-0000-0000-000000000000", version: 1, is: audit.ErrNotFound,
			check: func(t *testing.T, err error) {
				var nf *audit.NotFoundError
				require.ErrorAs(t, err, &nf)
				require.Equal(t, "00000000-0000-0000-0000-000000000000", nf.ID)
			}},
		{name: "version beyond history", typ: runbooks.TypeStep, id: step.ID, version: 5, is: audit.ErrVersionNotFound,
			check: func(t *testing.T, err error) {
				var ve *audit.VersionError
				require.ErrorAs(t, err, &ve)
				require.Equal(t, audit.VersionError{Ref: audit.Ref{Type: runbooks.TypeStep, ID: step.ID}, Version: 5, First: 1, Last: 4}, *ve)
			}},
		{name: "version zero", typ: runbooks.TypeStep, id: step.ID, version: 0, is: audit.ErrVersionNotFound},
		{name: "other account", typ: runbooks.TypeStep, id: step.ID, version: 1, read: audit.ReadOptions{AccountID: &eight}, is: audit.ErrOtherAccount,
			check: func(t *testing.T, err error) {
				var ae *audit.AccountError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, int64(7), ae.AccountID)
				require.Equal(t, int64(8), ae.Want)
			}},
		{name: "other account, version beyond", typ: runbooks.TypeStep, id: step.ID, version: 99, read: audit.ReadOptions{AccountID: &eight}, is: audit.ErrOtherAccount},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := map[string]error{}
			_, calls["StateAt"] = audit.StateAt(b.ctx, b.db, tc.typ, tc.id, tc.version, &tc.read)
			_, calls["Diff"] = audit.Diff(b.ctx, b.db, tc.typ, tc.id, 1, tc.version, &tc.read)
			calls["Revert"] = audit.Revert(b.ctx, b.db, tc.typ, tc.id, tc.version, &audit.RevertOptions{ReadOptions: tc.read})
			var plan audit.Plan
			calls["Revert dry run"] = audit.Revert(b.ctx, b.db, tc.typ, tc.id, tc.version,
				&audit.RevertOptions{ReadOptions: tc.read, DryRun: true, Plan: &plan})
			for call, err := range calls {
				require.ErrorIs(t, err, tc.is, call)
				require.Contains(t, err.Error(), "audit: ", call)
				if tc.check != nil {
					tc.check(t, err)
				}
			}
			require.Len(t, b.audits(t), before, "nothing written")
			requireStep(t, stepBefore, loadStep(t, b.db, step.ID))
		})
	}

	// In its own account, the same record is found.
	seven := int64(7)
	_, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, step.ID, 1, &audit.ReadOptions{AccountID: &seven})
	require.NoError(t, err)
	// A moment before a record existed is not an error; an unknown record is.
	_, err = audit.StateAsOf(b.ctx, b.db, runbooks.TypeStep, "nope", time.Now(), nil)
	require.True(t, errors.Is(err, audit.ErrNotFound))
	// Without the plugin.
	_, err = audit.StateAt(b.ctx, b.db.Session(&gorm.Session{}), runbooks.TypeStep, step.ID, 1, nil)
	require.NoError(t, err, "a session keeps the plugin")
}

// BenchmarkStateAt rebuilds a step with 10,000 versions at its first, its
// middle and its latest version: version 1 is replayed forward from the
// create, version 10,000 walked back from the current row, version 5,000
// either way at about half the cost. The history is inserted in bulk:
// version 1 is the step's create, versions 2..10,000 rename it.
func BenchmarkStateAt(b *testing.B) {
	const versions = 10_000
	bb, _ := histSetup(b, audit.Config{})
	step := longStepHistory(b, bb, versions)

	for _, bc := range []struct {
		name    string
		version int
		want    string
	}{
		{"version=1", 1, "n1"},
		{"version=5000", 5000, "n5000"},
		{"version=10000", versions, "n" + strconv.Itoa(versions)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				st, err := audit.StateAt(bb.ctx, bb.db, runbooks.TypeStep, step, bc.version, nil)
				if err != nil {
					b.Fatal(err)
				}
				if got := string(st.Attributes["name"]); got != `"`+bc.want+`"` {
					b.Fatalf("name = %s, want %q", got, bc.want)
				}
			}
		})
	}
}
