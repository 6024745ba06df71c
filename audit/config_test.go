package audit_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

type twoKeys struct {
	A string `gorm:"primaryKey"`
	B string `gorm:"primaryKey"`
}

// folder and page: deleting a folder deletes its pages in the database,
// behind gorm's back.
type folder struct {
	ID    uint
	Pages []page `gorm:"constraint:OnDelete:CASCADE"`
}

type page struct {
	ID       uint
	FolderID uint
}

type textAccount struct {
	ID        uint
	AccountID string
}

func TestInvalidConfigIsRejectedNamingTheField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		models []audit.Model
		field  string
	}{
		{"no models", []audit.Model{}, "Models"},
		{"nil value", []audit.Model{{Type: "X"}}, "Models[0].Value"},
		{"duplicate type", []audit.Model{{Value: &runbooks.Runbook{}, Type: "X"}, {Value: &runbooks.Step{}, Type: "X"}}, "Models[1].Type"},
		{"duplicate model", []audit.Model{{Value: &runbooks.Runbook{}, Type: "X"}, {Value: &runbooks.Runbook{}, Type: "Y"}}, "Models[1].Value"},
		{"unknown ignored column", []audit.Model{{Value: &runbooks.Step{}, Ignore: []string{"nope"}}}, "Models[0].Ignore"},
		{"unknown redacted column", []audit.Model{{Value: &runbooks.Step{}, Redact: []string{"nope"}}}, "Models[0].Redact"},
		{"unknown account column", []audit.Model{{Value: &runbooks.Step{}, AccountColumn: "tenant"}}, "Models[0].AccountColumn"},
		{"non-integer account column", []audit.Model{{Value: &textAccount{}}}, "Models[0].AccountColumn"},
		{"association half set", []audit.Model{{Value: &runbooks.Step{}, AssociatedType: "R"}}, "Models[0].AssociatedType"},
		{"unknown association column", []audit.Model{{Value: &runbooks.Step{}, AssociatedType: "R", AssociatedColumn: "nope"}}, "Models[0].AssociatedColumn"},
		{"composite primary key", []audit.Model{{Value: &twoKeys{}}}, "Models[0].Value"},
		{"cascading foreign key into an audited table", []audit.Model{{Value: &folder{}}, {Value: &page{}}}, "Models[0].Value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := dbtest.Open(t)
			err := db.Use(audit.New(audit.Config{Models: c.models}))
			var ce *audit.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, c.field, ce.Field, "error: %v", err)
		})
	}
}

func TestAPluginServesOneDatabase(t *testing.T) {
	t.Parallel()
	p := audit.New(audit.Config{Models: runbooks.Models()})
	require.NoError(t, dbtest.Open(t).Use(p))
	var ce *audit.ConfigError
	require.ErrorAs(t, dbtest.Open(t).Use(p), &ce)

	typ, ok := p.TypeOf(&runbooks.Step{})
	require.True(t, ok)
	require.Equal(t, runbooks.TypeStep, typ)
	_, ok = p.TypeOf(&twoKeys{})
	require.False(t, ok)
}

func TestRedactedColumnsKeepTheirSecrets(t *testing.T) {
	t.Parallel()
	models := runbooks.Models()
	models[0].Redact = []string{"description"}
	b := setup(t, audit.Config{Models: models})
	rb := runbooks.Runbook{AccountID: 1, Name: "r", Description: "the password is hunter2"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("description", "now it is swordfish").Error)
	require.NoError(t, b.w().Model(&rb).Update("description", "now it is swordfish").Error) // no change, no row
	rows := b.audits(t)
	require.Len(t, rows, 2)
	require.Equal(t, "[REDACTED]", decoded(t, rows[0].AuditedChanges)["description"])
	require.Equal(t, []any{"[REDACTED]", "[REDACTED]"}, decoded(t, rows[1].AuditedChanges)["description"])
}
