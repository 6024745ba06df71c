package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// doc is a JSON column type, as runbooks.JSON.
type doc json.RawMessage

func (d doc) Value() (driver.Value, error) {
	if len(d) == 0 {
		return nil, nil
	}
	return string(d), nil
}
func (d *doc) Scan(src any) error {
	var s sql.NullString // copies a []byte, keeps NULL apart
	if err := s.Scan(src); err != nil {
		return fmt.Errorf("scan doc: %w", err)
	}
	*d = nil
	if s.Valid {
		*d = doc(s.String)
	}
	return nil
}
func (d doc) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("null"), nil
	}
	return d, nil
}
func (doc) GormDataType() string { return "json" }
func (doc) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	if db.Dialector.Name() == "postgres" {
		return "jsonb"
	}
	return "json"
}

// code is stored as text and has a JSON form of its own, as
// runbooks.Duration: the audit records the stored text.
type code int

func (c code) Value() (driver.Value, error) { return fmt.Sprintf("C-%d", int(c)), nil }
func (c *code) Scan(src any) error {
	s, ok := src.(string)
	if !ok {
		if b, isBytes := src.([]byte); isBytes {
			s, ok = string(b), true
		}
	}
	if !ok {
		return fmt.Errorf("scan code from %T", src)
	}
	_, err := fmt.Sscanf(s, "C-%d", (*int)(c))
	return err
}
func (c code) MarshalJSON() ([]byte, error)                { return json.Marshal(fmt.Sprintf("C-%d", int(c))) }
func (code) GormDBDataType(*gorm.DB, *schema.Field) string { return "varchar(32)" }

type sample struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID int64
	Name      string
	Note      *string
	Count     int
	Ratio     float64
	Flag      bool
	When      *time.Time
	Whole     time.Time
	Gone      gorm.DeletedAt
	Doc       doc
	Code      code
	Secret    string
}

// TestDatabaseRenderingMatchesGo writes records through the statements that
// render audited_changes inside PostgreSQL and requires the rows to equal
// what the Go encoder makes of the same records read back. On SQLite both
// sides are the Go encoder.
func TestDatabaseRenderingMatchesGo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Open(t)
	require.NoError(t, Migrate(ctx, db))
	require.NoError(t, db.AutoMigrate(&sample{}))
	p := New(Config{Models: []Model{{Value: &sample{}, Type: "Sample", Redact: []string{"secret"}}}})
	require.NoError(t, db.Use(p))
	m := p.byType["Sample"]
	if db.Dialector.Name() == "postgres" {
		require.NotNil(t, m.fuse, "every column of sample can be rendered by PostgreSQL")
	}

	note := "a <note> & \"quotes\" \u00e9"
	when := time.Date(2026, 1, 2, 3, 4, 5, 120_000_000, time.UTC)
	records := []sample{
		{ID: "a", AccountID: 1, Name: "plain", Whole: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ID: "b", AccountID: 2, Name: "full", Note: &note, Count: -7, Ratio: 0.25, Flag: true, When: &when,
			Whole: time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.FixedZone("x", 3600)),
			Doc:   doc(`{"b": [1, 2.5, null, {"c": "d"}], "a": true}`), Code: 42, Secret: "hunter2"},
	}
	require.NoError(t, db.Create(&records).Error)
	require.NoError(t, db.Model(&sample{}).Where("id = ?", "b").
		Updates(map[string]any{"note": nil, "count": gorm.Expr("count + 1"), "doc": doc(`{"a": false}`), "code": code(7), "secret": "x"}).Error)
	require.NoError(t, db.Delete(&sample{}, "id = ?", "a").Error)

	var rows []Audit
	require.NoError(t, db.Order("id").Find(&rows).Error)
	require.Len(t, rows, 4)

	// What the Go encoder makes of each record as the database holds it.
	read := func(id string) sample {
		var s sample
		require.NoError(t, db.Unscoped().Take(&s, "id = ?", id).Error)
		return s
	}
	goSnapshot := func(s sample) map[string]any {
		c, err := m.snapshot(ctx, reflectOf(&s))
		require.NoError(t, err)
		return plain(t, c)
	}
	afterA, afterB := read("a"), read("b")
	beforeB := afterB
	beforeB.Note, beforeB.Count, beforeB.Doc, beforeB.Code, beforeB.Secret = &note, -7, records[1].Doc, 42, "hunter2"
	diff, err := m.diff(ctx, reflectOf(&beforeB), reflectOf(&afterB))
	require.NoError(t, err)

	createA := afterA
	createA.Gone = gorm.DeletedAt{}
	want := []map[string]any{goSnapshot(createA), goSnapshot(beforeB), plain(t, diff), goSnapshot(afterA)}
	for i, r := range rows {
		if d := cmp.Diff(want[i], plain(t, r.AuditedChanges)); d != "" {
			t.Errorf("row %d (%s %s): database rendering differs from Go's (-go +database):\n%s", i, r.Action, r.AuditableID, d)
		}
	}
	require.Equal(t, "[REDACTED]", plain(t, rows[1].AuditedChanges)["secret"])
}

func plain(t *testing.T, c Changes) map[string]any {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

func reflectOf(v any) reflect.Value { return reflect.ValueOf(v).Elem() }

// blob has a column PostgreSQL cannot render as the Go encoder does.
type blob struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID int64
	Data      []byte
}

// TestModelsPostgreSQLCannotRenderKeepThePortablePath audits a model with a
// bytea column: its writes take the two-statement path on PostgreSQL too,
// and callers asking for RETURNING themselves get their rows.
func TestModelsPostgreSQLCannotRenderKeepThePortablePath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Open(t)
	require.NoError(t, Migrate(ctx, db))
	require.NoError(t, db.AutoMigrate(&blob{}, &sample{}))
	p := New(Config{Models: []Model{{Value: &blob{}, Type: "Blob"}, {Value: &sample{}, Type: "Sample"}}})
	require.NoError(t, db.Use(p))
	require.Nil(t, p.byType["Blob"].fuse)

	b := blob{ID: "b1", AccountID: 3, Data: []byte("one")}
	require.NoError(t, db.Create(&b).Error)
	require.NoError(t, db.Model(&b).Update("data", []byte("two")).Error)
	require.NoError(t, db.Delete(&b).Error)
	var rows []Audit
	require.NoError(t, db.Where("auditable_type = ?", "Blob").Order("version").Find(&rows).Error)
	require.Len(t, rows, 3)
	// Bytes are recorded as base64: "one" and "two".
	want := []map[string]any{
		{"account_id": float64(3), "data": "b25l"},
		{"data": []any{"b25l", "dHdv"}},
		{"account_id": float64(3), "data": "dHdv"},
	}
	for i, r := range rows {
		if d := cmp.Diff(want[i], plain(t, r.AuditedChanges)); d != "" {
			t.Errorf("row %d (-want +got):\n%s", i, d)
		}
	}

	// A RETURNING asked for by the caller is honoured, and audited.
	s := sample{ID: "s1", AccountID: 1, Name: "before"}
	require.NoError(t, db.Create(&s).Error)
	var got sample
	got.ID = "s1"
	require.NoError(t, db.Model(&got).Clauses(clause.Returning{}).Update("count", gorm.Expr("count + 5")).Error)
	require.Equal(t, 5, got.Count, "the returned row reaches the caller's struct")
	require.Equal(t, "before", got.Name)
	var last Audit
	require.NoError(t, db.Where("auditable_type = ? AND auditable_id = ?", "Sample", "s1").Order("version DESC").Take(&last).Error)
	require.Equal(t, map[string]any{"count": []any{float64(0), float64(5)}}, plain(t, last.AuditedChanges))
}
