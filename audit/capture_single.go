package audit

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// On PostgreSQL, creates and deletes write their audit rows in the same
// statement as the change: the INSERT, DELETE or soft delete's UPDATE
// becomes a data-modifying CTE,
//
//	WITH "__audit_g" AS (INSERT ... / DELETE ... RETURNING *),
//	     "__audit_i" AS (INSERT INTO "audits" (...) SELECT ... FROM "__audit_g")
//	SELECT ... FROM "__audit_g"
//
// so an audited write costs no extra round trip. The audited_changes of
// each row are built from the returned row inside the database
// (model.snapshotSQL), matching encodeValue. The audit INSERT itself is
// auditsql's (auditsql.WriteInsertSelect); its version comes from the
// function gormaudit_next_version, which sees the audit rows of the
// transactions the statement waited for.

var (
	valuerType    = reflect.TypeFor[driver.Valuer]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// fusedAlias names the written rows inside a fused statement.
const fusedAlias = `"__audit_g"`

// refuseChangeFunction is created by Migrate on PostgreSQL: a single-statement
// write calls it to refuse a change it cannot record, such as a record
// moving to another account. It raises an error with SQLSTATE code (class
// "GA", this plugin's own), which fusedError turns back into the typed
// error, by code; detail and hint carry the record and the values.
const refuseChangeFunction = `CREATE OR REPLACE FUNCTION gormaudit_refuse_change(p_code text, p_message text, p_detail text, p_hint text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message, DETAIL = p_detail, HINT = p_hint;
END
$$`

// The SQLSTATE codes gormaudit_refuse_change raises.
const (
	codeAccountMove = "GA001"
	codeKeyChange   = "GA002"
)

// rowRef stands for the row a column expression reads, in the SQL
// templates of prepareSnapshotSQL.
const rowRef = "{{row}}"

// prepareSnapshotSQL sets the SQL renderings of the model's audited columns
// (m.columnSQL) and keys when every audited column can be rendered in SQL
// exactly as encodeValue renders it; otherwise the model keeps the
// two-statement path and m.snapshotSQL stays empty.
func (m *model) prepareSnapshotSQL(db *gorm.DB) {
	col := func(f *schema.Field) string { return rowRef + "." + quoteIdent(f.DBName) }
	m.columnSQL = make([]string, len(m.fields))
	m.jsonText = make([]bool, len(m.fields))
	m.checkedSQL = make([]string, len(m.fields))
	for i, f := range m.fields {
		expr, ok := sqlJSONOf(db, f, col(f))
		if !ok {
			m.columnSQL, m.checkedSQL = nil, nil
			return
		}
		m.columnSQL[i] = expr
		dbType := strings.ToLower(db.Migrator().FullDataTypeOf(f).SQL)
		m.checkedSQL[i] = checkedSQL(f, dbType, col(f), expr)
		m.jsonText[i] = strings.HasPrefix(dbType, "json") && !strings.HasPrefix(dbType, "jsonb")
	}
	keyText := func(f *schema.Field) string {
		c := fusedAlias + "." + quoteIdent(f.DBName)
		if isInteger(f.FieldType) {
			return `CASE WHEN ` + c + ` IS NULL OR ` + c + ` = 0 THEN '' ELSE ` + c + `::text END`
		}
		return `COALESCE(` + c + `::text, '')`
	}
	m.pkSQL = keyText(m.pk)
	m.accountSQL = "0"
	if m.account != nil {
		m.accountSQL = `COALESCE(` + fusedAlias + "." + quoteIdent(m.account.DBName) + `, 0)`
	}
	m.assocSQL = `''`
	if m.assocField != nil {
		m.assocSQL = keyText(m.assocField)
	}
	m.snapshotSQL = m.snapshotOf(fusedAlias)
}

// snapshotOf is the SQL of a create's or destroy's audited_changes for the
// row row: {column: value} for every audited column, refusing values that
// cannot be recorded as model.snapshot does.
func (m *model) snapshotOf(row string) string {
	pairs := make([]string, len(m.fields))
	for i, f := range m.fields {
		expr := strings.ReplaceAll(m.checkedSQL[i], rowRef, row)
		if m.redact[f.DBName] {
			expr = redactedSQL
		}
		pairs[i] = quoteLiteral(f.DBName) + ", " + expr
	}
	// jsonb_build_object takes at most 100 arguments: 40 pairs a call.
	var objects []string
	for start := 0; start < len(pairs); start += 40 {
		objects = append(objects, "jsonb_build_object("+strings.Join(pairs[start:min(start+40, len(pairs))], ", ")+")")
	}
	if len(objects) == 0 {
		return "'{}'::jsonb"
	}
	return strings.Join(objects, " || ")
}

// diffOf is the SQL of an update's audited_changes between rows old and
// new: {column: [old, new]} for every audited column that changed, as
// model.diff finds them; NULL when none did. Columns are compared as stored
// (json ones as jsonb, which has equality), and only changed ones rendered.
// As in model.diff, only new values are refused.
func (m *model) diffOf(old, new string) string {
	var b strings.Builder
	b.WriteString("(SELECT jsonb_object_agg(c.k, c.v) FROM (VALUES ")
	for i, f := range m.fields {
		col := func(row string) string { return row + "." + quoteIdent(f.DBName) }
		o, n := col(old), col(new)
		if m.jsonText[i] {
			o, n = o+"::jsonb", n+"::jsonb"
		}
		pair := "jsonb_build_array(" + strings.ReplaceAll(m.columnSQL[i], rowRef, old) + ", " +
			strings.ReplaceAll(m.checkedSQL[i], rowRef, new) + ")"
		if m.redact[f.DBName] {
			pair = "jsonb_build_array(" + redactedSQL + ", " + redactedSQL + ")"
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + quoteLiteral(f.DBName) + ", CASE WHEN " + o + " IS DISTINCT FROM " + n + " THEN " + pair + " END)")
	}
	b.WriteString(") AS c(k, v) WHERE c.v IS NOT NULL)")
	return b.String()
}

var redactedSQL = `to_jsonb(` + quoteLiteral(RedactedValue) + `::text)`

// sqlJSONOf is the SQL rendering of column expression c of field f, or false
// when it could differ from encodeValue's.
func sqlJSONOf(db *gorm.DB, f *schema.Field, c string) (string, bool) {
	dbType := strings.ToLower(db.Migrator().FullDataTypeOf(f).SQL)
	switch {
	case isTimestamp(dbType):
		// RFC 3339 in UTC to the microsecond (PostgreSQL's precision),
		// trailing zeros trimmed: Go's time.RFC3339Nano of the stored time.
		return `to_jsonb(regexp_replace(to_char(` + c + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z')`, true
	case isJSONColumn(f) && (strings.HasPrefix(dbType, "json")):
		return `to_jsonb(` + c + `)`, true
	}
	if !plainRendering(f.FieldType) {
		return "", false
	}
	for _, prefix := range []string{"varchar", "character varying", "text", "char", "bigint", "integer", "smallint", "int", "boolean", "bool", "numeric", "decimal", "double precision", "real", "uuid"} {
		if strings.HasPrefix(dbType, prefix) {
			return `to_jsonb(` + c + `)`, true
		}
	}
	return "", false
}

func isTimestamp(dbType string) bool {
	return strings.HasPrefix(dbType, "timestamptz") || strings.HasPrefix(dbType, "timestamp with time zone")
}

// valueErrorCode is the SQLSTATE gormaudit_refuse raises; fusedError turns
// it into a *ValueError.
const valueErrorCode = "GAV01"

// refuseFunction is created by Migrate on PostgreSQL. It raises the error
// that stands for a *ValueError, naming the column and the reason.
const refuseFunction = `CREATE OR REPLACE FUNCTION gormaudit_refuse(p_column text, p_reason text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RAISE EXCEPTION 'audit: value of % cannot be recorded: %', p_column, p_reason
		USING ERRCODE = '` + valueErrorCode + `', COLUMN = p_column, DETAIL = p_reason;
END
$$`

// checkedSQL wraps expr, the rendering of column c of field f, so that the
// values encodeValue and recordField refuse are refused in SQL too: a JSON
// column's document null or one nested deeper than MaxNestingDepth, a float
// or numeric column's NaN and ±Infinity (which to_jsonb renders as
// strings), a time outside the years 0001-9999. gormaudit_refuse is VOLATILE,
// so PostgreSQL calls it only for a value that is refused.
func checkedSQL(f *schema.Field, dbType, c, expr string) string {
	refuse := func(reason string) string {
		return "gormaudit_refuse(" + quoteLiteral(f.DBName) + ", " + quoteLiteral(reason) + ")"
	}
	switch {
	case isJSONColumn(f) && strings.HasPrefix(dbType, "json"):
		deep := fmt.Sprintf(`strict $.**{%d} ? (@.type() == "array" || @.type() == "object")`, MaxNestingDepth)
		return "CASE WHEN " + expr + " = 'null'::jsonb THEN " + refuse(errJSONNull.Reason) +
			" WHEN jsonb_path_exists(" + expr + ", " + quoteLiteral(deep) + ") THEN " +
			refuse(fmt.Sprintf("JSON nested deeper than the maximum of %d (audit.MaxNestingDepth)", MaxNestingDepth)) +
			" ELSE " + expr + " END"
	case isTimestamp(dbType):
		return "CASE WHEN " + c + " < '0001-01-01T00:00:00Z' OR " + c + " >= '10000-01-01T00:00:00Z' THEN " +
			refuse("the time is outside the years 0001-9999 that RFC 3339 can write") + " ELSE " + expr + " END"
	}
	for _, prefix := range []string{"double precision", "real", "numeric", "decimal", "float"} {
		if strings.HasPrefix(dbType, prefix) {
			return "CASE WHEN jsonb_typeof(" + expr + ") = 'string' THEN " +
				refuse("NaN and Infinity have no JSON form; store NULL instead") + " ELSE " + expr + " END"
		}
	}
	return expr
}

// plainRendering reports whether encodeValue renders values of type t as
// encoding/json renders the value stored in the database: strings, numbers
// and booleans, and driver.Valuers (encodeValue renders their Value), but
// not other types with their own JSON form.
func plainRendering(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(valuerType) || t.Implements(valuerType) {
		return true
	}
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// canFuse reports whether r's audit rows can be written by the change's own
// statement.
func (p *Plugin) canFuse(r *recorder) bool {
	return p.dialect.SingleStatementCapture() && r.m.snapshotSQL != "" && len(r.m.fields) > 0
}

// writeFusedInsert writes the INSERT of the audit rows for the rows of
// fusedAlias for which where holds, binding the context's values as
// parameters.
func (r *recorder) writeFusedInsert(stmt *gorm.Statement, action Action, changesSQL, where string) {
	m := r.m
	auditsql.WriteInsertSelect(stmt, r.p.dialect, auditsql.Selected{
		From: fusedAlias, Where: where,
		AccountID: m.accountSQL, AuditableID: m.pkSQL, AssociatedID: m.assocSQL, Changes: changesSQL,
		AuditableType: m.typeName, AssociatedType: m.assocType, UserID: r.who.UserID, UserType: r.who.UserType,
		Action: string(action), Comment: r.who.Comment, RemoteAddress: r.who.RemoteAddress,
		RequestUUID: r.who.RequestUUID, CreatedAt: r.who.CreatedAt, Gated: r.gated,
	})
}

// wrapFused turns the statement's SQL, which must return every column
// (RETURNING *), into the fused statement, selecting selectList from the
// written rows.
func (r *recorder) wrapFused(stmt *gorm.Statement, action Action, selectList string) {
	inner := stmt.SQL.String()
	stmt.SQL.Reset()
	stmt.WriteString("WITH " + fusedAlias + " AS (")
	r.ownSQL(stmt, func() { stmt.WriteString(inner) })
	stmt.WriteString(`), "__audit_i" AS (`)
	r.writeFusedInsert(stmt, action, r.m.snapshotSQL, "TRUE")
	stmt.WriteString(") SELECT " + selectList + " FROM " + fusedAlias)
}

// ownSQL runs write, which writes the change's own part of a fused
// statement, and notes where that part lies in the statement's text, in
// characters from 1 as PostgreSQL reports error positions.
func (r *recorder) ownSQL(stmt *gorm.Statement, write func()) {
	r.own.from = utf8.RuneCountInString(stmt.SQL.String()) + 1
	write()
	r.own.to = utf8.RuneCountInString(stmt.SQL.String())
}

// sameRecordGuard is the SQL that refuses, through gormaudit_refuse_change, an
// update that changes a record's primary key or account (see
// model.checkSameRecord); it is 0 otherwise.
func (m *model) sameRecordGuard(old, new string) string {
	col := func(row string, f *schema.Field) string { return row + "." + quoteIdent(f.DBName) }
	id := col(new, m.pk) + "::text"
	var b strings.Builder
	b.WriteString("CASE WHEN " + col(old, m.pk) + " IS DISTINCT FROM " + col(new, m.pk) +
		" THEN gormaudit_refuse_change('" + codeKeyChange + "', 'audit: an update cannot change a primary key', " + col(old, m.pk) + "::text, " + id + ")")
	if m.account != nil {
		b.WriteString(" WHEN " + col(old, m.account) + " IS DISTINCT FROM " + col(new, m.account) +
			" THEN gormaudit_refuse_change('" + codeAccountMove + "', 'audit: a record cannot move to another account', " + id +
			", COALESCE(" + col(old, m.account) + ", 0)::text || ' ' || COALESCE(" + col(new, m.account) + ", 0)::text)")
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

// refusal turns an error raised by gormaudit_refuse_change back into the typed
// error it stands for; nil for any other error.
func (m *model) refusal(e dialect.Error) error {
	switch e.Code {
	case codeKeyChange:
		return fmt.Errorf("%w: the update changed the primary key %s from %s to %s", ErrUnsupportedWrite, m.pk.DBName, e.Detail, e.Hint)
	case codeAccountMove:
		a := &AccountMoveError{Ref: Ref{Type: m.typeName, ID: e.Detail}}
		_, _ = fmt.Sscan(e.Hint, &a.From, &a.To)
		return a
	}
	return nil
}

// fusedError names the failure of a fused statement: a *WriteError unless
// the database blamed the change itself (see changesOwn).
func (r *recorder) fusedError(err error) error {
	e, ok := dialect.Classify(err)
	if !ok {
		return err
	}
	if refused := r.m.refusal(e); refused != nil {
		return &WriteError{Type: r.m.typeName, Action: r.action, Err: refused}
	}
	if e.Code == valueErrorCode {
		return &WriteError{Type: r.m.typeName, Action: r.action,
			Err: &ValueError{Column: e.Column, Reason: e.Detail}}
	}
	if r.changesOwn(e) {
		return err
	}
	return &WriteError{Type: r.m.typeName, Action: r.action, Err: versionConflict(err)}
}

// changesOwn reports whether the database blamed a fused statement's
// failure on the change rather than on its audit rows: an error about the
// audited table, a concurrent transaction or the connection, a statement
// error found in the change's own part of the text, or a data exception not
// about the audits table. A statement error PostgreSQL gives no position
// for (such as a missing privilege) counts as the audit's, which is where
// a missing privilege would most likely be.
//
// Positions assume the statement's text reaches PostgreSQL as written, with
// parameters apart (pgx's default); with the simple protocol, parameters
// are inlined and positions after them shift.
func (r *recorder) changesOwn(e dialect.Error) bool {
	if e.Table == r.m.schema.Table {
		return true
	}
	switch e.Kind {
	case dialect.KindSerializationFailure, dialect.KindDeadlock, dialect.KindInterrupted, dialect.KindConnection:
		return true
	case dialect.KindSyntaxOrAccess:
		return e.Position >= r.own.from && e.Position <= r.own.to
	case dialect.KindDataException:
		return e.Table != auditsql.Table
	}
	return false
}

// fuseCreate builds the statement gorm:create will run: the INSERT gorm
// would build, returning every column for the audit rows, wrapped with the
// audit INSERT. gorm:create finds the SQL built and runs it, scanning what
// it would have scanned (the columns with database defaults) or counting
// the rows.
func (p *Plugin) fuseCreate(db *gorm.DB, r *recorder) {
	stmt := db.Statement
	// gorm's own preparation, as in callbacks.Create.
	if !stmt.Unscoped {
		for _, c := range stmt.Schema.CreateClauses {
			stmt.AddClause(c)
		}
	}
	var returned []clause.Column
	for _, f := range stmt.Schema.FieldsWithDefaultDBValue {
		if f.Readable {
			returned = append(returned, clause.Column{Name: f.DBName})
		}
	}
	stmt.AddClauseIfNotExists(clause.Insert{})
	stmt.AddClause(callbacks.ConvertToCreateValues(stmt))

	stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{}}
	stmt.Build(stmt.BuildClauses...)
	selectList := "1" // counted by gorm's Exec as the rows affected
	if len(returned) > 0 {
		stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{Columns: returned}}
		names := make([]string, len(returned))
		for i, c := range returned {
			names[i] = quoteIdent(c.Name)
		}
		selectList = strings.Join(names, ", ")
	} else {
		delete(stmt.Clauses, "RETURNING")
	}
	r.wrapFused(stmt, ActionCreate, selectList)
}

// fusedUpdate runs an update on PostgreSQL as one statement that locks the
// matching rows, updates them, and writes an audit row for each whose
// audited columns changed:
//
//	WITH "__audit_p" AS (UPDATE "steps" SET ...
//	       FROM (SELECT "steps"."id" AS "__audit_pk", "steps" AS "__audit_old"
//	             FROM "steps" WHERE <conditions> FOR UPDATE) AS "__audit"
//	       WHERE "steps"."id" = "__audit"."__audit_pk"
//	       RETURNING "__audit"."__audit_old" AS "__audit_o", "steps".*),
//	     "__audit_g" AS (SELECT p.*, <diff of p."__audit_o" and p> AS "__audit_changes" FROM "__audit_p" AS p),
//	     "__audit_i" AS (INSERT INTO "audits" ... FROM "__audit_g" WHERE "__audit_changes" IS NOT NULL)
//	SELECT 1 FROM "__audit_p"
//
// The sub-select locks each row before the UPDATE reaches it and yields it
// as it is once locked, so the old values are the ones replaced even when
// concurrent writers queue on the same rows. It returns the rows updated.
func (p *Plugin) fusedUpdate(db *gorm.DB, r *recorder) (int64, error) {
	stmt := db.Statement
	stmt.SQL.Reset()
	stmt.Vars = stmt.Vars[:0]
	stmt.WriteString(`WITH "__audit_p" AS (`)
	r.ownSQL(stmt, func() { writeLockingUpdate(stmt, r.m.pk.DBName, `"__audit"."__audit_old" AS "__audit_o"`) })
	stmt.WriteString("), " + fusedAlias + ` AS (SELECT "p".*, ` + r.m.diffOf(`("p"."__audit_o")`, `"p"`) +
		` AS "__audit_changes", ` + r.m.sameRecordGuard(`("p"."__audit_o")`, `"p"`) + ` AS "__audit_guard" FROM "__audit_p" AS "p"), "__audit_i" AS (`)
	r.writeFusedInsert(stmt, ActionUpdate, fusedAlias+`."__audit_changes"`, fusedAlias+`."__audit_changes" IS NOT NULL`)
	// Reading the guard makes PostgreSQL evaluate it for every row updated,
	// whether or not the row gets an audit row.
	stmt.WriteString(`) SELECT "__audit_guard" FROM ` + fusedAlias)
	rows, err := stmt.ConnPool.QueryContext(r.ctx, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		return 0, r.fusedError(err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, r.fusedError(err)
	}
	return n, nil
}

// checked reports whether a column's values can be refused by the encoder
// in ways a SQL expression could reach unseen: JSON documents (null, too
// deep) and floating-point numbers (NaN, infinities).
func checked(f *schema.Field) bool {
	if isJSONColumn(f) {
		return true
	}
	t := f.FieldType
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64
}

// checkAssignments runs the encoder over an update's SET values before the
// update runs, so that a value it refuses is refused with nothing written
// (model.check does the same for a create's records). It reports portable
// true when a checked column is set to a SQL expression, whose result only
// the portable path sees, read back, before its audit row is written.
func (m *model) checkAssignments(stmt *gorm.Statement) (portable bool, err error) {
	set, _ := stmt.Clauses["SET"].Expression.(clause.Set)
	for _, a := range set {
		f := m.schema.LookUpField(a.Column.Name)
		if f == nil || !m.audits(f.DBName) || m.redact[f.DBName] {
			continue
		}
		if _, expr := a.Value.(clause.Expression); expr {
			portable = portable || checked(f)
			continue
		}
		b, err := encodeValue(a.Value, isJSONColumn(f))
		if err == nil {
			if d := nesting(b); d > MaxNestingDepth {
				err = tooDeep(d)
			}
		}
		if err != nil {
			var ve *ValueError
			if errors.As(err, &ve) && ve.Column == "" {
				ve.Column = f.DBName
			}
			return false, fmt.Errorf("encode %s.%s: %w", m.schema.Table, f.DBName, err)
		}
	}
	return portable, nil
}
