package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// valueRow has a column of each kind whose values the audit must carry
// exactly. Its bytea column keeps it on the two-statement path on
// PostgreSQL.
type valueRow struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID int64
	Text      string
	Bytes     []byte
	Doc       runbooks.JSON
	Ratio     float64
	At        time.Time
}

// valueDoc has only columns PostgreSQL renders itself: its writes and
// their audit rows are one statement there.
type valueDoc struct {
	ID        string `gorm:"primaryKey;size:36"`
	AccountID int64
	Doc       runbooks.JSON
	Ratio     float64 `gorm:"not null"`
	At        time.Time
}

const (
	typeValueRow = "Values::Row"
	typeValueDoc = "Values::Doc"
)

func valuesSetup(t *testing.T) (*gorm.DB, context.Context) {
	t.Helper()
	e := fixture.Open(t, &fixture.Options{
		Config: audit.Config{Models: []audit.Model{
			{Value: &valueRow{}, Type: typeValueRow}, {Value: &valueDoc{}, Type: typeValueDoc},
		}},
		Migrations: []fixture.Migration{func(_ context.Context, db *gorm.DB) error {
			return db.AutoMigrate(&valueRow{}, &valueDoc{})
		}},
	})
	return e.W(), e.Ctx
}

func auditRows(t *testing.T, db *gorm.DB, typ, id string) []audit.Audit {
	t.Helper()
	var rows []audit.Audit
	require.NoError(t, db.Where("auditable_type = ? AND auditable_id = ?", typ, id).Order("version").Find(&rows).Error)
	return rows
}

func loadRow(t *testing.T, db *gorm.DB, id string) valueRow {
	t.Helper()
	var r valueRow
	require.NoError(t, db.Take(&r, "id = ?", id).Error)
	return r
}

// requireValueRefused requires err to be a refused value and the record to be
// absent, with no audit row.
func requireValueRefused(t *testing.T, db *gorm.DB, err error, typ, id string) {
	t.Helper()
	require.ErrorIs(t, err, audit.ErrUnsupportedValue)
	var ve *audit.ValueError
	require.ErrorAs(t, err, &ve)
	require.NotEmpty(t, ve.Column)
	require.True(t, strings.HasPrefix(err.Error(), "audit: "), err.Error())
	require.Empty(t, auditRows(t, db, typ, id), "a refused write leaves no audit row")
}

// requireRoundTrip requires version v of the row to decode to want, and a
// revert to v to store exactly want.
func requireRoundTrip(t *testing.T, db *gorm.DB, ctx context.Context, id string, v int, want valueRow) {
	t.Helper()
	st, err := audit.StateAt(ctx, db, typeValueRow, id, v, nil)
	require.NoError(t, err)
	var got valueRow
	require.NoError(t, st.Decode(&got))
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("version %d decoded (-stored +decoded):\n%s", v, d)
	}
	require.NoError(t, audit.Revert(ctx, db, typeValueRow, id, v, nil))
	if d := cmp.Diff(want, loadRow(t, db, id)); d != "" {
		t.Fatalf("after revert to version %d (-want +stored):\n%s", v, d)
	}
}

func TestValueInvalidUTF8(t *testing.T) {
	t.Parallel()
	db, _ := valuesSetup(t)
	err := db.Create(&valueRow{ID: "t1", Text: "caf\xe9"}).Error
	require.Error(t, err)
	if dbtest.Dialect() == dbtest.Postgres {
		// PostgreSQL's text cannot hold it: the database refuses the write.
		require.Empty(t, auditRows(t, db, typeValueRow, "t1"))
	} else {
		requireValueRefused(t, db, err, typeValueRow, "t1")
	}
	var n int64
	require.NoError(t, db.Model(&valueRow{}).Count(&n).Error)
	require.Zero(t, n, "nothing is written")

	err = db.Create(&valueDoc{ID: "d1", Doc: runbooks.JSON("{\"a\":\"caf\xe9\"}")}).Error
	require.Error(t, err)
	require.Empty(t, auditRows(t, db, typeValueDoc, "d1"))
}

func TestValueBytesWithNUL(t *testing.T) {
	t.Parallel()
	db, ctx := valuesSetup(t)
	first := []byte{0x00, 0xff, 'a', 0x00, 0xc3}
	second := []byte{0x00, 0xfe, 'a', 0x00, 0xc3} // also not UTF-8: still a change
	require.NoError(t, db.Create(&valueRow{ID: "b1", Bytes: first}).Error)
	v1 := loadRow(t, db, "b1")
	require.Equal(t, first, v1.Bytes)
	require.NoError(t, db.Model(&valueRow{ID: "b1"}).Update("bytes", second).Error)

	rows := auditRows(t, db, typeValueRow, "b1")
	require.Len(t, rows, 2, "a change between two non-UTF-8 byte strings is recorded")
	old, nw, ok := rows[1].AuditedChanges.Pair("bytes")
	require.True(t, ok)
	require.JSONEq(t, `"AP9hAMM="`, string(old), "bytes are base64")
	require.JSONEq(t, `"AP5hAMM="`, string(nw))
	requireRoundTrip(t, db, ctx, "b1", 1, v1)
}

func TestValueJSONNullVsSQLNull(t *testing.T) {
	t.Parallel()
	db, ctx := valuesSetup(t)
	for _, m := range []any{&valueRow{ID: "n1", Doc: runbooks.JSON("null")}, &valueDoc{ID: "n1", Doc: runbooks.JSON(" null ")}} {
		err := db.Create(m).Error
		typ := typeValueRow
		if _, doc := m.(*valueDoc); doc {
			typ = typeValueDoc
		}
		requireValueRefused(t, db, err, typ, "n1")
	}

	// SQL NULL is null, and a document is nested JSON.
	require.NoError(t, db.Create(&valueRow{ID: "n2"}).Error)
	require.NoError(t, db.Create(&valueDoc{ID: "n2"}).Error)
	for _, typ := range []string{typeValueRow, typeValueDoc} {
		rows := auditRows(t, db, typ, "n2")
		require.Len(t, rows, 1)
		require.JSONEq(t, "null", string(rows[0].AuditedChanges["doc"]), typ)
	}
	v1 := loadRow(t, db, "n2")
	require.NoError(t, db.Model(&valueRow{ID: "n2"}).Update("doc", runbooks.JSON(`{"a":null}`)).Error)
	require.NoError(t, db.Model(&valueDoc{ID: "n2"}).Update("doc", runbooks.JSON(`{"a":null}`)).Error)
	err := db.Model(&valueDoc{ID: "n2"}).Update("doc", runbooks.JSON(`null`)).Error
	require.ErrorIs(t, err, audit.ErrUnsupportedValue, "an update to the document null is refused too")
	require.Len(t, auditRows(t, db, typeValueDoc, "n2"), 2)
	requireRoundTrip(t, db, ctx, "n2", 1, v1)
}

func TestValueSubMicrosecondTime(t *testing.T) {
	t.Parallel()
	db, ctx := valuesSetup(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123_456_789, time.UTC)
	require.NoError(t, db.Create(&valueRow{ID: "s1", At: at}).Error)
	v1 := loadRow(t, db, "s1")
	require.NoError(t, db.Model(&valueRow{ID: "s1"}).Update("at", at.Add(time.Nanosecond)).Error)
	v2 := loadRow(t, db, "s1")

	rows := auditRows(t, db, typeValueRow, "s1")
	require.JSONEq(t, `"`+v1.At.UTC().Format(time.RFC3339Nano)+`"`, string(rows[0].AuditedChanges["at"]), "the stored time, every digit")
	if v1.At.Equal(v2.At) {
		require.Len(t, rows, 1, "the database stored the same time: no change")
	} else {
		require.Len(t, rows, 2, "a nanosecond the database keeps is a change")
	}
	requireRoundTrip(t, db, ctx, "s1", 1, v1)
}

func TestValueNaNInf(t *testing.T) {
	t.Parallel()
	db, _ := valuesSetup(t)
	for i, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		id := string(rune('a' + i))
		// Refused before the write on both databases (SQLite would
		// otherwise store NaN as NULL).
		requireValueRefused(t, db, db.Create(&valueDoc{ID: id, Ratio: f}).Error, typeValueDoc, id)
		requireValueRefused(t, db, db.Create(&valueRow{ID: id, Ratio: f}).Error, typeValueRow, id)
	}

	// An update to a value JSON cannot carry is refused on every path.
	require.NoError(t, db.Create(&valueDoc{ID: "u", Ratio: 1.5}).Error)
	require.NoError(t, db.Create(&valueRow{ID: "u", Ratio: 1.5}).Error)
	require.ErrorIs(t, db.Model(&valueDoc{ID: "u"}).Update("ratio", math.Inf(1)).Error, audit.ErrUnsupportedValue)
	require.ErrorIs(t, db.Model(&valueRow{ID: "u"}).Update("ratio", math.Inf(-1)).Error, audit.ErrUnsupportedValue)
	require.Equal(t, 1.5, loadRow(t, db, "u").Ratio)
}

// nested returns a JSON document nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `[1]` + strings.Repeat(`}`, depth-1)
}

func TestValueDeepNesting(t *testing.T) {
	t.Parallel()
	db, ctx := valuesSetup(t)
	require.NoError(t, audit.CheckNesting([]byte(nested(audit.MaxNestingDepth))))
	require.ErrorIs(t, audit.CheckNesting([]byte(nested(audit.MaxNestingDepth+1))), audit.ErrUnsupportedValue)
	require.NoError(t, audit.CheckNesting([]byte(`"[[[[["`)), "brackets in strings do not nest")

	deep := runbooks.JSON(nested(audit.MaxNestingDepth + 1))
	requireValueRefused(t, db, db.Create(&valueRow{ID: "d1", Doc: deep}).Error, typeValueRow, "d1")
	requireValueRefused(t, db, db.Create(&valueDoc{ID: "d1", Doc: deep}).Error, typeValueDoc, "d1")
	require.NoError(t, db.Create(&valueDoc{ID: "d2"}).Error)
	require.ErrorIs(t, db.Model(&valueDoc{ID: "d2"}).Update("doc", deep).Error, audit.ErrUnsupportedValue)

	// The deepest document allowed round-trips.
	require.NoError(t, db.Create(&valueRow{ID: "d3", Doc: runbooks.JSON(nested(audit.MaxNestingDepth))}).Error)
	v1 := loadRow(t, db, "d3")
	require.NoError(t, db.Model(&valueRow{ID: "d3"}).Update("doc", runbooks.JSON(`{"b":1}`)).Error)
	requireRoundTrip(t, db, ctx, "d3", 1, v1)
}

// TestValueDeepLegacyRow stores, with raw SQL, a record and its audit row
// holding a document deeper than encoding/json reads (10,000 levels), as
// written before the limit, and upgrades the database: the row can be read, rendered as JSON, and its
// record updated and reverted to any state that can be written.
func TestValueDeepLegacyRow(t *testing.T) {
	t.Parallel()
	db, ctx := valuesSetup(t)
	depth := 20_000
	if dbtest.Dialect() == dbtest.Postgres {
		depth = 12_000 // deeper exceeds PostgreSQL's default max_stack_depth
	}
	deep := nested(depth)
	require.NoError(t, db.Exec(`INSERT INTO value_docs (id, account_id, doc, ratio, at) VALUES ('L', 1, ?, 0, ?)`,
		deep, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Error)
	require.NoError(t, db.Exec(`INSERT INTO audits (account_id, auditable_id, auditable_type, action, audited_changes, version, created_at)
		VALUES (1, 'L', ?, 'create', ?, 1, ?)`, typeValueDoc,
		`{"id":"L","account_id":1,"doc":`+deep+`,"ratio":0,"at":"2026-01-01T00:00:00Z"}`, time.Now().UTC()).Error)
	// The database is then upgraded to this release: Migrate creates the
	// version counters from the audit rows.
	require.NoError(t, db.Migrator().DropTable("audit_versions"))
	require.NoError(t, audit.Migrate(ctx, db))

	var rows []audit.Audit
	require.NoError(t, db.Where("auditable_id = ?", "L").Find(&rows).Error)
	require.Len(t, rows, 1)
	require.Equal(t, depth, depthOf(rows[0].AuditedChanges["doc"]))
	b, err := json.Marshal(rows)
	require.NoError(t, err, "a stored row always renders")
	var shown []struct {
		AuditedChanges map[string]json.RawMessage `json:"audited_changes"`
	}
	require.NoError(t, json.Unmarshal(b, &shown), "and its JSON can be read back")
	var placeholder map[string]string
	require.NoError(t, json.Unmarshal(shown[0].AuditedChanges["doc"], &placeholder))
	require.Equal(t, compactText(deep), compactText(placeholder[audit.TooDeepKey]), "the value's text is kept")

	// The record can be replaced by a shallow document, and reverted to it,
	// but not to the deep one, which cannot be written any more.
	require.NoError(t, db.Model(&valueDoc{ID: "L"}).Update("doc", runbooks.JSON(`{"fixed":true}`)).Error)
	st, err := audit.StateAt(ctx, db, typeValueDoc, "L", 1, nil)
	require.NoError(t, err)
	var v1 valueDoc
	require.NoError(t, st.Decode(&v1), "a deep state decodes")
	require.Equal(t, depth, depthOf(json.RawMessage(v1.Doc)))
	// runbooks.JSON's own Value refuses it before the plugin does.
	require.Error(t, audit.Revert(ctx, db, typeValueDoc, "L", 1, nil))
	var cur valueDoc
	require.NoError(t, db.Take(&cur, "id = ?", "L").Error)
	require.JSONEq(t, `{"fixed":true}`, string(cur.Doc), "a refused revert writes nothing")
	require.NoError(t, db.Model(&valueDoc{ID: "L"}).Update("doc", runbooks.JSON(`{"fixed":2}`)).Error)
	require.NoError(t, audit.Revert(ctx, db, typeValueDoc, "L", 2, nil))
	require.NoError(t, db.Take(&cur, "id = ?", "L").Error)
	require.JSONEq(t, `{"fixed":true}`, string(cur.Doc))
}

func depthOf(b json.RawMessage) int {
	return bytes.Count(b, []byte("{")) + bytes.Count(b, []byte("["))
}

func compactText(s string) string {
	return strings.NewReplacer(" ", "", "\n", "").Replace(s)
}
