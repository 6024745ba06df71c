package audit_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestStaleSnapshotGetsAVersionConflict re-creates, in a REPEATABLE READ
// transaction, a record that another transaction deleted after the first
// one's snapshot was taken. The snapshot cannot see the delete's audit row,
// so its next version collides; the caller gets ErrVersionConflict to retry
// on, and nothing is written.
func TestStaleSnapshotGetsAVersionConflict(t *testing.T) {
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has one writer: no transaction can hold an older snapshot while another commits")
	}
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	victim := w.steps[0]

	tx := b.w().Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	require.NoError(t, tx.Error)
	var n int64
	require.NoError(t, tx.Model(&runbooks.Step{}).Count(&n).Error) // the snapshot is taken here
	require.NoError(t, b.w().Unscoped().Delete(&victim).Error)     // committed: destroy, version 2

	again := victim
	again.DiscardedAt = gorm.DeletedAt{}
	err := tx.Create(&again).Error
	require.ErrorIs(t, err, audit.ErrVersionConflict)
	var we *audit.WriteError
	require.ErrorAs(t, err, &we)
	require.NoError(t, tx.Rollback().Error)

	rows := b.auditsOf(t, runbooks.TypeStep, victim.ID)
	require.Len(t, rows, 2)
	require.Equal(t, audit.ActionDestroy, rows[1].Action)
}
