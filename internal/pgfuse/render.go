package pgfuse

import (
	"fmt"
	"strings"
)

// rowRef stands for the row a column expression reads, in the templates of
// a column's renderings.
const rowRef = "{{row}}"

// column is a Column with its renderings: templates over rowRef.
type column struct {
	Column
	// json renders the value as the encoder does; checked does too, and
	// refuses the values the encoder refuses.
	json, checked string
	// jsonText is a json (not jsonb) column, compared as jsonb.
	jsonText bool
}

// render renders column c under rules r, or reports false when its
// rendering could differ from the encoder's.
func render(c Column, r Rules) (column, bool) {
	ref := rowRef + "." + QuoteIdent(c.Name)
	expr, ok := jsonOf(c, ref)
	if !ok {
		return column{}, false
	}
	return column{Column: c, json: expr, checked: checkedSQL(c, r, ref, expr),
		jsonText: strings.HasPrefix(c.SQLType, "json") && !strings.HasPrefix(c.SQLType, "jsonb")}, true
}

// at is template t reading row row.
func at(t, row string) string { return strings.ReplaceAll(t, rowRef, row) }

// jsonOf is the SQL rendering of column expression ref of column c, or
// false when it could differ from the encoder's.
func jsonOf(c Column, ref string) (string, bool) {
	switch {
	case isTimestamp(c.SQLType):
		// RFC 3339 in UTC to the microsecond (PostgreSQL's precision),
		// trailing zeros trimmed: Go's time.RFC3339Nano of the stored time.
		return `to_jsonb(regexp_replace(to_char(` + ref + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z')`, true
	case c.JSON && strings.HasPrefix(c.SQLType, "json"):
		return `to_jsonb(` + ref + `)`, true
	}
	if !c.Plain {
		return "", false
	}
	if plainType(c.SQLType) {
		return `to_jsonb(` + ref + `)`, true
	}
	return "", false
}

// plainTypes are the column types whose to_jsonb is what the encoder
// writes for a plain Go value: text, integers, booleans, decimals and
// floats (checked for NaN and infinities), UUIDs.
var plainTypes = []string{
	"character varying", "varchar", "text", "character", "char",
	"bigint", "integer", "smallint", "int2", "int4", "int8", "int",
	"boolean", "bool", "numeric", "decimal", "double precision", "real", "float4", "float8", "uuid",
}

// plainType reports whether a column's type, as gorm declares it (with a
// size or precision and constraints, such as "varchar(36) NOT NULL"), is
// one of plainTypes. An array ("text[]", "varchar(20)[]") is not, nor is a
// type that merely starts like one ("interval"): to_jsonb renders an array
// as a JSON array and an interval as PostgreSQL's text, neither as the
// encoder does.
func plainType(sqlType string) bool {
	t := strings.ToLower(strings.TrimSpace(sqlType))
	for _, name := range plainTypes {
		rest, ok := strings.CutPrefix(t, name)
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, "(") {
			if i := strings.IndexByte(rest, ')'); i >= 0 {
				rest = rest[i+1:]
			}
		}
		return rest == "" || rest[0] == ' '
	}
	return false
}

func isTimestamp(sqlType string) bool {
	return strings.HasPrefix(sqlType, "timestamptz") || strings.HasPrefix(sqlType, "timestamp with time zone")
}

// checkedSQL wraps expr, the rendering of column expression ref of column
// c, so that the values the encoder refuses are refused in SQL too: a JSON
// column's document null or one nested deeper than r.MaxNesting, a float or
// numeric column's NaN and ±Infinity (which to_jsonb renders as strings), a
// time outside the years 0001-9999. gormaudit_refuse is VOLATILE, so
// PostgreSQL calls it only for a value that is refused.
func checkedSQL(c Column, r Rules, ref, expr string) string {
	refuse := func(reason string) string {
		return "gormaudit_refuse(" + quoteLiteral(c.Name) + ", " + quoteLiteral(reason) + ")"
	}
	switch {
	case c.JSON && strings.HasPrefix(c.SQLType, "json"):
		deep := fmt.Sprintf(`strict $.**{%d} ? (@.type() == "array" || @.type() == "object")`, r.MaxNesting)
		return "CASE WHEN " + expr + " = 'null'::jsonb THEN " + refuse(r.JSONNullReason) +
			" WHEN jsonb_path_exists(" + expr + ", " + quoteLiteral(deep) + ") THEN " +
			refuse(fmt.Sprintf("JSON nested deeper than the maximum of %d (audit.MaxNestingDepth)", r.MaxNesting)) +
			" ELSE " + expr + " END"
	case isTimestamp(c.SQLType):
		return "CASE WHEN " + ref + " < '0001-01-01T00:00:00Z' OR " + ref + " >= '10000-01-01T00:00:00Z' THEN " +
			refuse("the time is outside the years 0001-9999 that RFC 3339 can write") + " ELSE " + expr + " END"
	}
	for _, prefix := range []string{"double precision", "real", "numeric", "decimal", "float"} {
		if strings.HasPrefix(c.SQLType, prefix) {
			return "CASE WHEN jsonb_typeof(" + expr + ") = 'string' THEN " +
				refuse("NaN and Infinity have no JSON form; store NULL instead") + " ELSE " + expr + " END"
		}
	}
	return expr
}

// snapshotOf is the SQL of a create's or destroy's audited_changes for the
// row row: {column: value} for every column, refusing the values the
// encoder refuses; redacted renders a redacted column's value.
func snapshotOf(cols []column, redacted, row string) string {
	pairs := make([]string, len(cols))
	for i, c := range cols {
		expr := at(c.checked, row)
		if c.Redacted {
			expr = redacted
		}
		pairs[i] = quoteLiteral(c.Name) + ", " + expr
	}
	// jsonb_build_object takes at most 100 arguments: 40 pairs a call.
	var objects []string
	for start := 0; start < len(pairs); start += 40 {
		objects = append(objects, "jsonb_build_object("+strings.Join(pairs[start:min(start+40, len(pairs))], ", ")+")")
	}
	return strings.Join(objects, " || ")
}

// diffOf is the SQL of an update's audited_changes between rows old and
// new: {column: [old, new]} for every column that changed, as the encoder
// finds them; NULL when none did. Columns are compared as stored (json ones
// as jsonb, which has equality), and only changed ones rendered. As in the
// encoder, only new values are refused.
func diffOf(cols []column, redacted, old, new string) string {
	var b strings.Builder
	b.WriteString("(SELECT jsonb_object_agg(c.k, c.v) FROM (VALUES ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + quoteLiteral(c.Name) + ", CASE WHEN " + changedSQL(c, old, new) + " THEN " + pairSQL(c, redacted, old, new) + " END)")
	}
	b.WriteString(") AS c(k, v) WHERE c.v IS NOT NULL)")
	return b.String()
}

// diffConcat is diffOf for a few columns, without a sub-select: the
// objects of the changed columns concatenated, NULL when none changed.
func diffConcat(cols []column, redacted, old, new string) string {
	var b strings.Builder
	b.WriteString("NULLIF(")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" || ")
		}
		b.WriteString("CASE WHEN " + changedSQL(c, old, new) + " THEN jsonb_build_object(" + quoteLiteral(c.Name) + ", " +
			pairSQL(c, redacted, old, new) + ") ELSE '{}'::jsonb END")
	}
	b.WriteString(", '{}'::jsonb)")
	return b.String()
}

// comparable is column c of row as compared: json as jsonb, which has
// equality.
func comparable(c column, row string) string {
	v := row + "." + QuoteIdent(c.Name)
	if c.jsonText {
		v += "::jsonb"
	}
	return v
}

// changedSQL is the condition that column c differs between rows old and
// new.
func changedSQL(c column, old, new string) string {
	return comparable(c, old) + " IS DISTINCT FROM " + comparable(c, new)
}

// pairSQL is the [old, new] pair of column c between rows old and new.
func pairSQL(c column, redacted, old, new string) string {
	if c.Redacted {
		return "jsonb_build_array(" + redacted + ", " + redacted + ")"
	}
	return "jsonb_build_array(" + at(c.json, old) + ", " + at(c.checked, new) + ")"
}

// rowOf is the row value of columns cols of row, as compared.
func rowOf(cols []column, row string) string {
	vals := make([]string, len(cols))
	for i, c := range cols {
		vals[i] = comparable(c, row)
	}
	return "ROW(" + strings.Join(vals, ", ") + ")"
}

// sameRecordGuard is the SQL that refuses, through gormaudit_refuse_change,
// an update from row old to row new that changes the record's primary key
// or account; it is 0 otherwise.
func sameRecordGuard(m Model, old, new string) string {
	col := func(row, name string) string { return row + "." + QuoteIdent(name) }
	id := col(new, m.PK.Name) + "::text"
	var b strings.Builder
	b.WriteString("CASE WHEN " + col(old, m.PK.Name) + " IS DISTINCT FROM " + col(new, m.PK.Name) +
		" THEN gormaudit_refuse_change('" + CodeKeyChange + "', 'audit: an update cannot change a primary key', " + col(old, m.PK.Name) + "::text, " + id + ")")
	if m.Account != "" {
		b.WriteString(" WHEN " + col(old, m.Account) + " IS DISTINCT FROM " + col(new, m.Account) +
			" THEN gormaudit_refuse_change('" + CodeAccountMove + "', 'audit: a record cannot move to another account', " + id +
			", COALESCE(" + col(old, m.Account) + ", 0)::text || ' ' || COALESCE(" + col(new, m.Account) + ", 0)::text)")
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

// QuoteIdent quotes a PostgreSQL identifier, such as a column name.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}
