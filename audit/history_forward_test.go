package audit_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// randomStepHistory gives a step a random history of n versions: updates,
// discards and undiscards, hard deletes and creations again under the same
// id. snaps[v] is the step right after version v; absent while it did not
// exist.
func randomStepHistory(t testing.TB, b *bundle, rng *rand.Rand, n int) (id string, snaps map[int]runbooks.Step) {
	t.Helper()
	rb := runbooks.Runbook{AccountID: 7, Name: "Random"}
	require.NoError(t, b.w().Create(&rb).Error)
	step := runbooks.Step{AccountID: 7, RunbookID: rb.ID, Name: "s0", Config: runbooks.JSON(`{"k":0}`)}
	require.NoError(t, b.w().Create(&step).Error)
	id, snaps = step.ID, map[int]runbooks.Step{1: loadStep(t, b.db, step.ID)}
	exists, discarded := true, false
	for v := 2; v <= n; v++ {
		w := b.w()
		switch k := rng.IntN(10); {
		case !exists:
			step = runbooks.Step{ID: id, AccountID: 7, RunbookID: rb.ID, Name: fmt.Sprint("again", v), Position: v}
			require.NoError(t, w.Create(&step).Error)
			exists = true
		case discarded && k < 4:
			require.NoError(t, w.Unscoped().Model(&runbooks.Step{ID: id}).Update("discarded_at", nil).Error)
			discarded = false
		case k < 6:
			require.NoError(t, w.Unscoped().Model(&runbooks.Step{ID: id}).Updates(map[string]any{
				"name": fmt.Sprint("s", v), "position": rng.IntN(5),
				"config": runbooks.JSON(fmt.Sprintf(`{"k":%d}`, v)), "repeats_at": time.Date(2026, 5, 1, 8, 30, v, 123456000, time.UTC),
			}).Error)
		case k < 8 && !discarded:
			require.NoError(t, w.Delete(&runbooks.Step{ID: id}).Error)
			discarded = true
		default:
			require.NoError(t, w.Unscoped().Delete(&runbooks.Step{ID: id}).Error)
			exists, discarded = false, false
		}
		require.Len(t, b.auditsOf(t, runbooks.TypeStep, id), v)
		if exists {
			snaps[v] = loadStep(t, b.db, id)
		}
	}
	return id, snaps
}

// TestStateAtForwardMatchesBackward rebuilds every version of random
// histories both ways, forward from the create and backward from the
// current row, and as StateAt chooses, and checks each against the step as
// it was.
func TestStateAtForwardMatchesBackward(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			b, _ := histSetup(t, audit.Config{})
			const n = 40
			id, snaps := randomStepHistory(t, b, rand.New(rand.NewPCG(seed, 12)), n)
			for v := 1; v < n; v++ {
				fwd, forward, err := audit.StateAtForward(b.ctx, b.db, runbooks.TypeStep, id, v)
				require.NoError(t, err)
				require.True(t, forward, "version %d replayed forward", v)
				back, err := audit.StateAtBackward(b.ctx, b.db, runbooks.TypeStep, id, v)
				require.NoError(t, err)
				auto, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, id, v, nil)
				require.NoError(t, err)
				meta := func(s *audit.State) []any { return []any{s.Version, s.At.UTC(), s.Exists, s.AccountID, s.Skipped} }
				for _, got := range []*audit.State{fwd, auto} {
					if d := cmp.Diff(meta(back), meta(got)); d != "" {
						t.Fatalf("version %d (-backward +forward):\n%s", v, d)
					}
				}
				want, existed := snaps[v]
				require.Equal(t, existed, fwd.Exists, "version %d", v)
				if existed {
					for _, got := range []*audit.State{fwd, back, auto} {
						requireStep(t, want, decodeStep(t, got))
					}
				}
			}
			// The latest version is never replayed forward.
			_, forward, err := audit.StateAtForward(b.ctx, b.db, runbooks.TypeStep, id, n)
			require.NoError(t, err)
			require.False(t, forward)
		})
	}
}

// longStepHistory inserts in bulk a step of account 1 with the given number
// of versions: version 1 is its create, versions 2.. rename it to n2, n3,
// ... and move it. It returns the step's id.
func longStepHistory(t testing.TB, b *bundle, versions int) string {
	t.Helper()
	rb := runbooks.Runbook{AccountID: 1, Name: "Bench"}
	require.NoError(t, b.w().Create(&rb).Error)
	step := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "n1", Config: runbooks.JSON(`{"a":1}`)}
	require.NoError(t, b.w().Create(&step).Error)
	base := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]audit.Audit, 0, versions-1)
	for k := 2; k <= versions; k++ {
		rows = append(rows, audit.Audit{AccountID: 1, AuditableID: step.ID, AuditableType: runbooks.TypeStep,
			AssociatedID: rb.ID, AssociatedType: runbooks.TypeRunbook, Action: audit.ActionUpdate, Version: k,
			CreatedAt: base.Add(time.Duration(k) * time.Second),
			AuditedChanges: audit.Changes{
				"name":     json.RawMessage(`["n` + strconv.Itoa(k-1) + `","n` + strconv.Itoa(k) + `"]`),
				"position": json.RawMessage(`[` + strconv.Itoa(k-2) + `,` + strconv.Itoa(k-1) + `]`),
			}})
	}
	require.NoError(t, b.db.CreateInBatches(&rows, 1000).Error)
	require.NoError(t, b.db.Exec("UPDATE steps SET name = ?, position = ? WHERE id = ?", "n"+strconv.Itoa(versions), versions-1, step.ID).Error)
	return step.ID
}

// TestStateAtForwardKeepsChecks rebuilds the first version of a long
// history, which StateAt replays forward, and checks that it refuses what
// the backward walk refuses: another account's record or rows, a current
// row its last audit row does not explain, drift in the rows it reads. A
// column the model no longer audits that appears only in rows it does not
// read is the documented exception.
func TestStateAtForwardKeepsChecks(t *testing.T) {
	t.Parallel()
	const versions = 200
	one, two := int64(1), int64(2)
	at1 := func(b *bundle, id string, read *audit.ReadOptions) (*audit.State, error) {
		return audit.StateAt(b.ctx, b.db, runbooks.TypeStep, id, 1, read)
	}
	edit := func(t *testing.T, b *bundle, sql string, args ...any) {
		require.NoError(t, b.db.Exec(sql, args...).Error)
	}
	t.Run("same as backward", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		id := longStepHistory(t, b, versions)
		fwd, err := at1(b, id, &audit.ReadOptions{AccountID: &one})
		require.NoError(t, err)
		back, err := audit.StateAtBackward(b.ctx, b.db, runbooks.TypeStep, id, 1)
		require.NoError(t, err)
		require.Equal(t, `"n1"`, string(fwd.Attributes["name"]))
		requireStep(t, decodeStep(t, back), decodeStep(t, fwd))
		require.Equal(t, []any{back.Version, back.At.UTC(), back.Exists, back.AccountID},
			[]any{fwd.Version, fwd.At.UTC(), fwd.Exists, fwd.AccountID})
	})
	t.Run("other account", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		id := longStepHistory(t, b, versions)
		_, err := at1(b, id, &audit.ReadOptions{AccountID: &two})
		require.ErrorIs(t, err, audit.ErrOtherAccount)
		// A row the forward replay does not read moved to account 2.
		edit(t, b, "UPDATE audits SET account_id = 2 WHERE auditable_id = ? AND version = ?", id, versions/2)
		_, err = at1(b, id, &audit.ReadOptions{AccountID: &one})
		require.ErrorIs(t, err, audit.ErrOtherAccount)
	})
	t.Run("current row unexplained", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		id := longStepHistory(t, b, versions)
		edit(t, b, "UPDATE steps SET name = 'raw' WHERE id = ?", id)
		_, err := at1(b, id, nil)
		he := requireGap(t, err)
		require.Equal(t, versions, he.Version)
	})
	for _, v := range []int{2, versions - 1} { // the row after 1; one of the newest
		t.Run(fmt.Sprint("drift in the rows read, version ", v), func(t *testing.T) {
			t.Parallel()
			b, _ := histSetup(t, audit.Config{})
			id := longStepHistory(t, b, versions)
			drift(t, b, id, v, func(m map[string]json.RawMessage) { m["legacy_priority"] = json.RawMessage(`["high","low"]`) })
			_, err := at1(b, id, nil)
			var de *audit.DriftError
			require.ErrorAs(t, err, &de)
			require.Equal(t, []string{"legacy_priority"}, de.Removed)
		})
	}
	t.Run("drift only in rows not read", func(t *testing.T) {
		t.Parallel()
		b, _ := histSetup(t, audit.Config{})
		id := longStepHistory(t, b, versions)
		drift(t, b, id, versions/2, func(m map[string]json.RawMessage) { m["legacy_priority"] = json.RawMessage(`["high","low"]`) })
		st, err := at1(b, id, nil)
		require.NoError(t, err, "the forward replay does not read version %d", versions/2)
		require.Equal(t, `"n1"`, string(st.Attributes["name"]))
		_, err = audit.StateAtBackward(b.ctx, b.db, runbooks.TypeStep, id, 1)
		require.ErrorIs(t, err, audit.ErrSchemaDrift)
	})
}
