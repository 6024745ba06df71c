package audit_test

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// The plugin runs some creates itself instead of gorm's create callback
// (upserts, creates with RETURNING, every create on SQLite). This test pins
// what gorm's own callback does for the caller, so that a gorm upgrade that
// changes it fails here: the same writes on a plain and on an audited
// database leave the caller the same records, the same RowsAffected and the
// same rows.
func TestCreatesLeaveTheCallerWhatGormWould(t *testing.T) {
	t.Parallel()
	type outcome struct {
		Gadgets  []gadget
		Affected []int64
		Rows     []gadget
	}
	run := func(db *gorm.DB) outcome {
		var o outcome
		do := func(res *gorm.DB) {
			require.NoError(t, res.Error)
			o.Affected = append(o.Affected, res.RowsAffected)
		}
		one := gadget{AccountID: 1, Name: "one", Note: ptr("n")}
		do(db.Create(&one))
		batch := []gadget{{AccountID: 1, Name: "two", Color: "red"}, {AccountID: 1, Name: "three"}}
		do(db.Create(&batch))
		omitted := gadget{AccountID: 1, Name: "four", Color: "green"}
		do(db.Omit("color").Create(&omitted))
		returning := gadget{AccountID: 1, Name: "five"}
		do(db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}, {Name: "color"}}}).Create(&returning))
		again := gadget{ID: one.ID, AccountID: 1, Name: "one again"}
		do(db.Clauses(clause.OnConflict{DoNothing: true}).Create(&again))
		fresh := gadget{AccountID: 1, Name: "six"}
		do(db.Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh))
		updated := gadget{ID: batch[0].ID, AccountID: 1, Name: "two updated", Color: "red"}
		do(db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&updated))
		mixed := []gadget{{ID: batch[1].ID, AccountID: 1, Name: "three updated", Color: "blue"}, {AccountID: 1, Name: "seven", Color: "blue"}}
		do(db.Save(&mixed))
		nested := gadget{AccountID: 1, Name: "eight", Parts: []part{{AccountID: 1, Label: "a"}, {AccountID: 1, Label: "b"}}}
		do(db.Create(&nested))
		o.Gadgets = append([]gadget{one}, batch...)
		o.Gadgets = append(o.Gadgets, omitted, returning, again, fresh, updated)
		o.Gadgets = append(o.Gadgets, mixed...)
		o.Gadgets = append(o.Gadgets, nested)
		require.NoError(t, db.Order("id").Find(&o.Rows).Error)
		return o
	}

	plain := dbtest.Open(t)
	require.NoError(t, plain.AutoMigrate(&gadget{}, &part{}))
	audited := setupIntegrity(t)
	want := run(plain)
	got := run(audited.w())
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("plain gorm (-) and the audited database (+) differ:\n%s", d)
	}
	require.NotEmpty(t, audited.audits(t))
	for _, g := range got.Rows {
		requireReplayMatches(t, audited, "Shop::Gadget", strconv.FormatInt(g.ID, 10))
	}
}
