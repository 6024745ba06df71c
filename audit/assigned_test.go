package audit_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

// label has a column the database computes from another, which no UPDATE
// assigns: its changes must be recorded all the same.
type label struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID int64
	Name      string
	Note      string
	Shout     string `gorm:"->;type:text GENERATED ALWAYS AS (upper(name)) STORED"`
}

const typeLabel = "Labels::Label"

// TestUpdateRecordsColumnsTheDatabaseChanged requires an update's audit row
// to hold every audited column the stored row changed, also those its SET
// did not assign (a generated column here; a trigger alike): the
// single-statement update renders the assigned columns' diff and falls
// back to every column's only when another column changed. An update that
// changes the other columns alone, and one that changes nothing, are
// checked too.
func TestUpdateRecordsColumnsTheDatabaseChanged(t *testing.T) {
	t.Parallel()
	e := fixture.Open(t, &fixture.Options{
		Config: audit.Config{Models: []audit.Model{{Value: &label{}, Type: typeLabel}}},
		Migrations: []fixture.Migration{func(_ context.Context, db *gorm.DB) error {
			return db.AutoMigrate(&label{})
		}},
	})
	db := e.W()
	l := label{ID: "l-1", AccountID: 3, Name: "quiet", Note: "n"}
	require.NoError(t, db.Create(&l).Error)

	require.NoError(t, db.Model(&l).Update("name", "louder").Error)
	require.NoError(t, db.Model(&l).Update("note", "m").Error)
	require.NoError(t, db.Model(&l).Updates(map[string]any{"name": "louder", "note": "m"}).Error)
	require.NoError(t, db.Model(&label{}).Where("id = ?", l.ID).Update("name", "LOUDER").Error)

	var rows []audit.Audit
	require.NoError(t, e.DB.Where("auditable_type = ?", typeLabel).Order("version").Find(&rows).Error)
	got := make([]map[string]any, len(rows))
	for i, r := range rows {
		got[i] = decoded(t, r.AuditedChanges)
	}
	want := []map[string]any{
		{"account_id": float64(3), "name": "quiet", "note": "n", "shout": "QUIET"},
		{"name": pair("quiet", "louder"), "shout": pair("QUIET", "LOUDER")},
		{"note": pair("n", "m")},
		{"name": pair("louder", "LOUDER")}, // shout stays LOUDER
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("audited changes (-want +got):\n%s", d)
	}
}
