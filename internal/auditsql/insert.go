// Package auditsql is the only code that spells the audits table and its
// columns in SQL: the INSERT of audit rows (from values, or from the rows a
// statement wrote), a record's next version, and the reads of histories and
// of a runbook's members. Callers hand it values and SQL expressions over
// their own rows; they never write "audits" themselves, and this package's
// tests fail if the packages they check do (see checkedPackages in
// ownership_test.go).
package auditsql

import (
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/dialect"
)

// Table is the name of the table audit rows are written to.
const Table = "audits"

// VersionIndex is the unique index on (auditable_type, auditable_id,
// version): PostgreSQL names it in the error of a duplicate version.
const VersionIndex = "idx_audits_auditable_version"

// AccountsTable is the table of the accounts whose writes are recorded
// under EnabledAccountsOnly.
const AccountsTable = "audit_accounts"

// NextVersionFunction is the name of the PostgreSQL function that computes a
// record's next version (see [CreateNextVersionFunction]).
const NextVersionFunction = "gormaudit_next_version"

// insertColumns are the columns an INSERT of audit rows writes, in the
// order of its values (see Row.params).
var insertColumns = []string{"account_id", "auditable_id", "auditable_type", "associated_id", "associated_type",
	"user_id", "user_type", "action", "audited_changes", "version", "comment", "remote_address", "request_uuid",
	"created_at", "transaction_id"}

// insertInto is the INSERT up to its values or SELECT.
var insertInto = `INSERT INTO "` + Table + `" ("` + strings.Join(insertColumns, `","`) + `") `

// nextVersion is the SQL of the next version of the record whose type and
// id are the SQL expressions typ and id: one more than its latest audit
// row's, 1 for its first. It is the one definition of a next version: the
// INSERT of rows from values runs it inline, and the function
// gormaudit_next_version runs it for statements that write their own audit
// rows. Writers lock the record's row before it runs, and VersionIndex
// refuses a duplicate that could still slip through, so versions are
// gapless and unique.
func nextVersion(typ, id string) string {
	return `(SELECT COALESCE(MAX("version"),0)+1 FROM "` + Table + `" WHERE "auditable_type" = ` + typ +
		` AND "auditable_id" = ` + id + `)`
}

// CreateNextVersionFunction is the statement that creates (or replaces) the
// PostgreSQL function gormaudit_next_version(type, id). Being VOLATILE, the
// function reads the audits table with a snapshot taken when it is called:
// inside a single statement that has just locked the record's row, it sees
// the audit rows of the transactions that statement waited for, which the
// statement's own snapshot would not.
func CreateNextVersionFunction() string {
	return `CREATE OR REPLACE FUNCTION ` + NextVersionFunction + `(p_type text, p_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RETURN ` + nextVersion("p_type", "p_id") + `;
END
$$`
}

// EnabledAccount is the condition, on the SQL expression account, that the
// account's writes are recorded (EnabledAccountsOnly). An INSERT of audit
// rows evaluates it itself, so it costs no round trip and sees exactly what
// the writing transaction sees.
func EnabledAccount(account string) string {
	t := `"` + AccountsTable + `"`
	return `EXISTS (SELECT 1 FROM ` + t + ` WHERE ` + t + `."account_id" = ` + account + ` AND ` + t + `."enabled")`
}

// Row holds the values of one audit row to insert; its version and
// transaction id are computed by the INSERT.
type Row struct {
	AccountID                    int64
	AuditableID, AuditableType   string
	AssociatedID, AssociatedType string
	UserID, UserType             string
	Action                       string
	// Changes is audited_changes as a driver value: JSON text.
	Changes                             any
	Comment, RemoteAddress, RequestUUID string
	CreatedAt                           time.Time
}

// param is a value of a Row with the PostgreSQL type of its column.
type param struct {
	v   any
	typ string
}

// params lists r's values in insertColumns order; the version and the
// transaction id are marked by a nil param.
func (r *Row) params() []param {
	return []param{{r.AccountID, "bigint"}, {r.AuditableID, "text"}, {r.AuditableType, "text"},
		{r.AssociatedID, "text"}, {r.AssociatedType, "text"}, {r.UserID, "text"}, {r.UserType, "text"},
		{r.Action, "text"}, {r.Changes, "jsonb"}, {}, {r.Comment, "text"}, {r.RemoteAddress, "text"},
		{r.RequestUUID, "text"}, {r.CreatedAt, "timestamptz"}, {}}
}

// Insert returns the INSERT of rows, with ? placeholders, and its
// arguments. With gated, only the rows of enabled accounts are inserted, as
// the database decides in the same statement:
//
//	WITH "__audit_v" (...) AS (VALUES (...), ...)
//	INSERT INTO "audits" (...) SELECT ... FROM "__audit_v" WHERE EXISTS (<enabled account>)
func Insert(d dialect.Dialect, rows []Row, gated bool) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 15*len(rows))
	if gated {
		b.WriteString(`WITH "__audit_v" ("` + strings.Join(insertColumns, `","`) + `") AS (`)
	} else {
		b.WriteString(insertInto)
	}
	b.WriteString("VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("(")
		for j, p := range rows[i].params() {
			if j > 0 {
				b.WriteString(",")
			}
			switch {
			case insertColumns[j] == "version":
				b.WriteString(nextVersion("?", "?"))
				args = append(args, rows[i].AuditableType, rows[i].AuditableID)
			case insertColumns[j] == "transaction_id":
				b.WriteString(d.TransactionIDSQL())
			case gated:
				// A VALUES list that is not the INSERT's own gets no
				// types from it.
				b.WriteString("?" + d.Cast(p.typ))
				args = append(args, p.v)
			default:
				b.WriteString("?")
				args = append(args, p.v)
			}
		}
		b.WriteString(")")
	}
	if gated {
		b.WriteString(`) ` + insertInto + `SELECT "__audit_v"."` + strings.Join(insertColumns, `","__audit_v"."`) +
			`" FROM "__audit_v" WHERE ` + EnabledAccount(`"__audit_v"."account_id"`))
	}
	return b.String(), args
}

// Selected describes the audit rows of a statement that writes its own:
// one row for each row of From for which Where holds.
type Selected struct {
	// From names the written rows, such as a WITH query; Where is a
	// condition on them.
	From, Where string
	// AccountID, AuditableID, AssociatedID and Changes are SQL expressions
	// over a row of From; AssociatedID is '' for a record that belongs to
	// none.
	AccountID, AuditableID, AssociatedID, Changes string
	// The other columns are the same for every row, bound as parameters.
	AuditableType, AssociatedType, UserID, UserType, Action string
	Comment, RemoteAddress, RequestUUID                     string
	CreatedAt                                               time.Time
	// Gated keeps only the rows of enabled accounts (EnabledAccountsOnly).
	Gated bool
}

// WriteInsertSelect writes the INSERT ... SELECT of s to stmt, binding its
// constants as parameters of stmt, in the order of [Selected.Vars]. The
// version comes from gormaudit_next_version, so it needs
// [dialect.Dialect.SingleStatementCapture].
func WriteInsertSelect(stmt *gorm.Statement, d dialect.Dialect, s Selected) {
	vars, next := s.Vars(), 0
	bind := func(typ string) {
		stmt.AddVar(stmt, vars[next])
		next++
		stmt.WriteString(d.Cast(typ))
	}
	stmt.WriteString(insertInto + "SELECT " + s.AccountID + ", " + s.AuditableID + ", ")
	bind("text") // AuditableType
	stmt.WriteString(", " + s.AssociatedID + ", CASE WHEN " + s.AssociatedID + " = '' THEN '' ELSE ")
	bind("text") // AssociatedType
	stmt.WriteString(" END")
	for range 3 { // UserID, UserType, Action
		stmt.WriteString(", ")
		bind("text")
	}
	stmt.WriteString(", " + s.Changes + ", " + NextVersionFunction + "(")
	bind("text") // AuditableType
	stmt.WriteString(", " + s.AuditableID + ")")
	for range 3 { // Comment, RemoteAddress, RequestUUID
		stmt.WriteString(", ")
		bind("text")
	}
	stmt.WriteString(", ")
	bind("timestamptz") // CreatedAt
	stmt.WriteString(", " + d.TransactionIDSQL() + " FROM " + s.From + " WHERE " + s.Where)
	if s.Gated {
		stmt.WriteString(" AND " + EnabledAccount(s.AccountID))
	}
	if next != len(vars) {
		panic("auditsql: WriteInsertSelect bound a different number of values than Selected.Vars lists")
	}
}

// Vars are the parameters [WriteInsertSelect] binds for s, in order: the
// values that are the same for every audit row of the statement. A caller
// that keeps the statement's text for the next statement of the same shape
// binds these in its place.
func (s Selected) Vars() []any {
	return []any{s.AuditableType, s.AssociatedType, s.UserID, s.UserType, s.Action, s.AuditableType,
		s.Comment, s.RemoteAddress, s.RequestUUID, s.CreatedAt}
}
