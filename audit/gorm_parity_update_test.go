package audit_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// The plugin replaces gorm's update and delete callbacks for audited models
// (to read old values and write audit rows in the same statement). This
// test pins what gorm's own callbacks do for the caller, as
// TestCreatesLeaveTheCallerWhatGormWould does for creates: the same writes
// on a plain and on an audited database leave the same RowsAffected,
// errors, values handed back and rows.
func TestUpdatesAndDeletesLeaveTheCallerWhatGormWould(t *testing.T) {
	t.Parallel()
	type outcome struct {
		Affected []int64
		Errors   []string
		Back     []gadget
		Rows     []gadget
	}
	run := func(db *gorm.DB) outcome {
		var o outcome
		do := func(res *gorm.DB) {
			o.Affected = append(o.Affected, res.RowsAffected)
			msg := ""
			if res.Error != nil {
				msg = "error"
				if errors.Is(res.Error, gorm.ErrMissingWhereClause) {
					msg = "missing where"
				}
			}
			o.Errors = append(o.Errors, msg)
		}
		gs := []gadget{{AccountID: 1, Name: "a"}, {AccountID: 1, Name: "b", Color: "red"}, {AccountID: 1, Name: "c"}, {AccountID: 1, Name: "d"}}
		require.NoError(t, db.Create(&gs).Error)
		do(db.Model(&gs[0]).Update("name", "a2"))
		do(db.Model(&gs[0]).Update("name", "a2")) // no change: still a matched row
		do(db.Model(&gs[1]).Updates(map[string]any{"name": "b2", "color": "green"}))
		do(db.Model(&gs[1]).Updates(gadget{Name: "b3"}))
		do(db.Model(&gadget{}).Where("account_id = ?", 1).Update("color", gorm.Expr("color || '!'")))
		do(db.Model(&gadget{}).Where("name = ?", "nobody").Update("color", "x"))
		do(db.Model(&gs[2]).UpdateColumn("name", "c2"))
		gs[3].Name = "d2"
		do(db.Save(&gs[3]))
		var back []gadget
		do(db.Model(&back).Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}, {Name: "name"}}}).
			Where("id IN ?", []int64{gs[0].ID, gs[1].ID}).Update("name", "returned"))
		o.Back = append(o.Back, back...)
		var all []gadget
		do(db.Model(&all).Clauses(clause.Returning{}).Where("id = ?", gs[2].ID).Update("color", "blue"))
		o.Back = append(o.Back, all...)
		do(db.Model(&gadget{}).Update("name", "everyone"))
		do(db.Delete(&gadget{}))
		var gone []gadget
		do(db.Clauses(clause.Returning{}).Where("id = ?", gs[0].ID).Delete(&gone))
		o.Back = append(o.Back, gone...)
		do(db.Delete(&gadget{}, gs[1].ID))
		do(db.Where("name = ?", "nobody").Delete(&gadget{}))
		do(db.Where("account_id = ?", 1).Delete(&gadget{}))
		// Soft deletes, and a hard delete of a discarded row.
		rbs := []runbooks.Runbook{{ID: "rb-1", AccountID: 1, Name: "x"}, {ID: "rb-2", AccountID: 1, Name: "y"}}
		require.NoError(t, db.Create(&rbs).Error)
		do(db.Delete(&rbs[0]))
		do(db.Delete(&rbs[0])) // already discarded: no row matched
		do(db.Unscoped().Delete(&rbs[0]))
		do(db.Where("name = ?", "y").Delete(&runbooks.Runbook{}))
		var left int64
		require.NoError(t, db.Unscoped().Model(&runbooks.Runbook{}).Count(&left).Error)
		o.Affected = append(o.Affected, left)
		require.NoError(t, db.Order("id").Find(&o.Rows).Error)
		return o
	}

	plain := dbtest.Open(t)
	require.NoError(t, plain.AutoMigrate(&gadget{}, &part{}))
	require.NoError(t, runbooks.Migrate(t.Context(), plain))
	audited := setupIntegrity(t)
	want := run(plain)
	got := run(audited.w())
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("plain gorm (-) and the audited database (+) differ:\n%s", d)
	}
	require.NotEmpty(t, audited.audits(t))
}
