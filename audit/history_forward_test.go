package audit_test

import (
	"fmt"
	"math/rand/v2"
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
// current row, and checks both against the step as it was.
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
				meta := func(s *audit.State) []any { return []any{s.Version, s.At.UTC(), s.Exists, s.AccountID, s.Skipped} }
				if d := cmp.Diff(meta(back), meta(fwd)); d != "" {
					t.Fatalf("version %d (-backward +forward):\n%s", v, d)
				}
				want, existed := snaps[v]
				require.Equal(t, existed, fwd.Exists, "version %d", v)
				if existed {
					requireStep(t, want, decodeStep(t, fwd))
					requireStep(t, want, decodeStep(t, back))
				}
			}
			// The latest version is never replayed forward.
			_, forward, err := audit.StateAtForward(b.ctx, b.db, runbooks.TypeStep, id, n)
			require.NoError(t, err)
			require.False(t, forward)
		})
	}
}
