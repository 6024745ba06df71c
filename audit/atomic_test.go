package audit_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// breakAudits makes every audit insert fail until the returned func runs.
func breakAudits(t *testing.T, b *bundle) (restore func()) {
	t.Helper()
	require.NoError(t, b.db.Exec(`ALTER TABLE audits RENAME TO audits_away`).Error)
	return func() { require.NoError(t, b.db.Exec(`ALTER TABLE audits_away RENAME TO audits`).Error) }
}

func TestAFailedAuditRollsTheWriteBack(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	before := b.audits(t)

	restore := breakAudits(t, b)
	createErr := b.w().Create(&runbooks.Step{AccountID: 7, RunbookID: w.runbook.ID, Name: "never"}).Error
	updateErr := b.w().Model(&w.steps[0]).Update("name", "never").Error
	deleteErr := b.w().Delete(&w.steps[1]).Error
	restore()

	for name, err := range map[string]error{"create": createErr, "update": updateErr, "delete": deleteErr} {
		var we *audit.WriteError
		require.ErrorAs(t, err, &we, name)
	}
	var steps []runbooks.Step
	require.NoError(t, b.db.Unscoped().Order("position").Find(&steps).Error)
	require.Len(t, steps, 3, "the failed create must be rolled back")
	require.Equal(t, "Page the DBA", steps[0].Name, "the failed update must be rolled back")
	require.False(t, steps[1].DiscardedAt.Valid, "the failed delete must be rolled back")
	require.Equal(t, len(before), len(b.audits(t)))
}

func TestAuditsShareTheCallersTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	before := len(b.audits(t))

	boom := errors.New("boom")
	err := b.w().Transaction(func(tx *gorm.DB) error {
		require.NoError(t, tx.Create(&runbooks.Step{AccountID: 7, RunbookID: w.runbook.ID, Name: "rolled back"}).Error)
		require.NoError(t, tx.Model(&w.steps[0]).Update("position", 42).Error)
		require.NoError(t, tx.Delete(&w.steps[2]).Error)
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Len(t, b.audits(t), before, "a rolled-back transaction leaves no audit rows")

	require.NoError(t, b.w().Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&w.steps[0]).Update("position", 42).Error; err != nil {
			return err
		}
		return tx.Delete(&w.steps[2]).Error
	}))
	rows := b.audits(t)
	require.Len(t, rows, before+2)
	require.Equal(t, audit.ActionUpdate, rows[before].Action)
	require.Equal(t, audit.ActionDestroy, rows[before+1].Action)

	// An audit failing inside the caller's transaction returns the error
	// to the caller, whose rollback takes the earlier writes with it.
	restore := breakAudits(t, b)
	err = b.w().Transaction(func(tx *gorm.DB) error {
		return tx.Model(&w.steps[1]).Update("name", "lost").Error
	})
	restore()
	var we *audit.WriteError
	require.ErrorAs(t, err, &we)
	var s runbooks.Step
	require.NoError(t, b.db.Take(&s, "id = ?", w.steps[1].ID).Error)
	require.Equal(t, "Promote replica", s.Name)
}

// TestConcurrentUpdatesGetEveryVersionOnce runs 32 goroutines making 50
// updates each to one step. On PostgreSQL they contend for the row; every
// update must be audited with its own version, with no duplicate or gap.
func TestConcurrentUpdatesGetEveryVersionOnce(t *testing.T) {
	t.Parallel()
	const workers, each = 32, 50
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	step := w.steps[0]

	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res := b.w().Model(&runbooks.Step{ID: step.ID}).Update("position", gorm.Expr("position + 1"))
				if res.Error != nil {
					errs <- res.Error
				} else if res.RowsAffected != 1 {
					errs <- errors.New("an update affected no row")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("update failed: %v", err)
	}

	var got runbooks.Step
	require.NoError(t, b.db.Take(&got, "id = ?", step.ID).Error)
	require.Equal(t, workers*each, got.Position, "every update applied")

	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 1+workers*each, "every update audited")
	for i, r := range rows {
		require.Equal(t, i+1, r.Version, "versions must be 1..%d without gaps", len(rows))
		if i == 0 {
			continue
		}
		// Each audit's old value is the previous audit's new value: the
		// updates were recorded in the order they were applied.
		old, new, ok := r.AuditedChanges.Pair("position")
		require.True(t, ok)
		require.Equal(t, []string{itoa(i - 1), itoa(i)}, []string{string(old), string(new)})
	}
	t.Logf("dialect %s: %d updates, versions 1..%d", dbtest.Dialect(), workers*each, len(rows))
}

func itoa(i int) string { return string(jsonNumber(i)) }
