package pgfuse

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

var rules = Rules{RedactedValue: "[REDACTED]", MaxNesting: 64,
	JSONNullReason: "a JSON column's document null cannot be told apart from SQL NULL in audited_changes; store SQL NULL instead"}

// sample is testdata/sample.json: the columns of the audit package's test
// model sample as it describes them on PostgreSQL, and the SQL the audit
// package rendered for that model before the rendering moved here.
type sample struct {
	Columns               []Column
	Snapshot, Diff, Guard string
	PK, Account, Assoc    string
	Refuse, RefuseChange  string
}

func readSample(t *testing.T) sample {
	t.Helper()
	b, err := os.ReadFile("testdata/sample.json")
	require.NoError(t, err)
	var s sample
	require.NoError(t, json.Unmarshal(b, &s))
	require.NotEmpty(t, s.Columns)
	return s
}

// TestStatementsAreTheSQLRenderedBeforeTheMove builds the sample model and
// requires both statements, and the functions, to be byte for byte what
// the audit package wrote before: its own part and audit INSERT stand in
// as markers, with the INSERT's selection spelled out.
func TestStatementsAreTheSQLRenderedBeforeTheMove(t *testing.T) {
	s := readSample(t)
	c, ok := Build(Model{Columns: s.Columns, PK: Key{Name: "id"}, Account: "account_id",
		Associated: &Key{Name: "count", Integer: true}}, rules)
	require.True(t, ok)
	insert := func(b *strings.Builder) func(Rows) {
		return func(r Rows) {
			b.WriteString(`"__audit_i" AS (INSERT[` + strings.Join([]string{r.From, r.Where, r.Changes, r.AuditableID, r.AccountID, r.AssociatedID}, " | ") + "])")
		}
	}
	var create, update strings.Builder
	c.WriteSnapshotStatement(&create, func() { create.WriteString("OWN") }, insert(&create), "*")
	c.WriteUpdateStatement(&update, func() { update.WriteString("OWN") }, insert(&update), nil)

	keys := s.PK + " | " + s.Account + " | " + s.Assoc
	want := map[string]string{
		"create": `WITH "__audit_g" AS (OWN), "__audit_i" AS (INSERT["__audit_g" | TRUE | ` + s.Snapshot + ` | ` + keys +
			`]) SELECT * FROM "__audit_g"`,
		"update": `WITH "__audit_p" AS (OWN), "__audit_g" AS (SELECT "p".*, ` + s.Diff + ` AS "__audit_changes", ` + s.Guard +
			` AS "__audit_guard" FROM "__audit_p" AS "p"), "__audit_i" AS (INSERT["__audit_g" | "__audit_g"."__audit_changes" IS NOT NULL | "__audit_g"."__audit_changes" | ` +
			keys + `]) SELECT "__audit_guard" FROM "__audit_g"`,
		"refuse":       s.Refuse,
		"refuseChange": s.RefuseChange,
	}
	got := map[string]string{"create": create.String(), "update": update.String(),
		"refuse": RefuseFunction, "refuseChange": RefuseChangeFunction}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("SQL differs from the audit package's before the move (-before +now):\n%s", d)
	}
}

// TestBuildKeepsModelsPostgreSQLCannotRenderOnThePortablePath lists columns
// whose rendering in SQL could differ from the encoder's: Build refuses a
// model holding any of them, and a model with no audited column.
func TestBuildKeepsModelsPostgreSQLCannotRenderOnThePortablePath(t *testing.T) {
	for name, col := range map[string]Column{
		"bytea":                    {Name: "data", SQLType: "bytea", Plain: true},
		"timestamp without zone":   {Name: "at", SQLType: "timestamp"},
		"a slice":                  {Name: "tags", SQLType: "text[]"},
		"an array Valuer":          {Name: "tags", SQLType: "text[]", Plain: true},
		"a sized array Valuer":     {Name: "tags", SQLType: "varchar(20)[]", Plain: true},
		"an interval Valuer":       {Name: "wait", SQLType: "interval", Plain: true},
		"an inet Valuer":           {Name: "ip", SQLType: "inet", Plain: true},
		"a JSON form of its own":   {Name: "code", SQLType: "varchar(32)"},
		"JSON held in a text type": {Name: "doc", SQLType: "text", JSON: true},
	} {
		t.Run(name, func(t *testing.T) {
			ok := Column{Name: "name", SQLType: "text", Plain: true}
			c, built := Build(Model{Columns: []Column{ok, col}, PK: Key{Name: "id", Integer: true}}, rules)
			require.False(t, built)
			require.Nil(t, c)
		})
	}
	_, built := Build(Model{PK: Key{Name: "id", Integer: true}}, rules)
	require.False(t, built, "a model with no audited column")
}

// TestJSONTextColumnsAreComparedAsJSONB checks that an update compares a
// json column's values as jsonb, which has equality (json has none), and a
// jsonb column's as they are.
func TestJSONTextColumnsAreComparedAsJSONB(t *testing.T) {
	c, ok := Build(Model{Columns: []Column{
		{Name: "a", SQLType: "json", JSON: true, Plain: true},
		{Name: "b", SQLType: "jsonb", JSON: true, Plain: true},
	}, PK: Key{Name: "id", Integer: true}}, rules)
	require.True(t, ok)
	require.Contains(t, c.updateRows, `CASE WHEN ("p"."__audit_o")."a"::jsonb IS DISTINCT FROM "p"."a"::jsonb THEN`)
	require.Contains(t, c.updateRows, `CASE WHEN ("p"."__audit_o")."b" IS DISTINCT FROM "p"."b" THEN`)
}

func TestPlainTypesMatchWholeTypeNames(t *testing.T) {
	for sqlType, want := range map[string]bool{
		"varchar(36) NOT NULL": true, "text": true, "bigint not null": true, "double precision": true,
		"character varying(255)": true, "numeric(10,2)": true, "int": true, "uuid": true,
		"text[]": false, "varchar(20)[]": false, "interval": false, "integer[]": false, "inet": false,
		"bytea": false, "timestamp": false, "int4range": false, "charx": false,
	} {
		require.Equal(t, want, plainType(sqlType), sqlType)
	}
}

// TestAssignedDiffFallsBackToEveryColumn checks the shape of an update's
// diff given the columns its SET assigns: the assigned columns' diff while
// the others compare equal (json as jsonb), every column's otherwise, and
// every column's alone when all are assigned.
func TestAssignedDiffFallsBackToEveryColumn(t *testing.T) {
	c, ok := Build(Model{Columns: []Column{
		{Name: "a", SQLType: "text", Plain: true},
		{Name: "b", SQLType: "json", JSON: true, Plain: true},
		{Name: "c", SQLType: "bigint", Plain: true},
	}, PK: Key{Name: "id", Integer: true}}, rules)
	require.True(t, ok)
	full := diffOf(c.cols, c.redacted, updatedOld, updatedNew)
	require.Equal(t, full, c.assignedDiff([]string{"c", "b", "a", "updated_at"}))
	got := c.assignedDiff([]string{"a", "updated_at"})
	require.Equal(t, `CASE WHEN ROW(("p"."__audit_o")."b"::jsonb, ("p"."__audit_o")."c") IS NOT DISTINCT FROM ROW("p"."b"::jsonb, "p"."c") `+
		`THEN NULLIF(CASE WHEN ("p"."__audit_o")."a" IS DISTINCT FROM "p"."a" THEN jsonb_build_object('a', `+
		`jsonb_build_array(to_jsonb(("p"."__audit_o")."a"), to_jsonb("p"."a"))) ELSE '{}'::jsonb END, '{}'::jsonb) `+
		`ELSE `+full+` END`, got)
	require.Equal(t, `CASE WHEN ROW(("p"."__audit_o")."a", ("p"."__audit_o")."b"::jsonb, ("p"."__audit_o")."c") IS NOT DISTINCT FROM `+
		`ROW("p"."a", "p"."b"::jsonb, "p"."c") THEN NULL ELSE `+full+` END`, c.assignedDiff([]string{}))
}
