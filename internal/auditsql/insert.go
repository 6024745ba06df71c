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

// insertColumns are the columns an INSERT of audit rows writes, in the
// order of its values (see Row.params).
var insertColumns = []string{"account_id", "auditable_id", "auditable_type", "associated_id", "associated_type",
	"user_id", "user_type", "action", "audited_changes", "version", "comment", "remote_address", "request_uuid",
	"created_at", "transaction_id"}

// insertInto is the INSERT up to its values or SELECT.
var insertInto = `INSERT INTO "` + Table + `" ("` + strings.Join(insertColumns, `","`) + `") `

// EnabledAccount is the condition, on the SQL expression account, that the
// account's writes are recorded (EnabledAccountsOnly). An INSERT of audit
// rows evaluates it itself, so it costs no round trip and sees exactly what
// the writing transaction sees.
func EnabledAccount(account string) string {
	t := `"` + AccountsTable + `"`
	return `EXISTS (SELECT 1 FROM ` + t + ` WHERE ` + t + `."account_id" = ` + account + ` AND ` + t + `."enabled")`
}

// Row holds the values of one audit row to insert; its transaction id is
// computed by the INSERT.
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
	// Version is the row's version, as [TakeVersions] took it.
	Version int64
}

// params lists r's values in insertColumns order; the transaction id,
// which the INSERT computes, is nil.
func (r *Row) params() []any {
	return []any{r.AccountID, r.AuditableID, r.AuditableType, r.AssociatedID, r.AssociatedType, r.UserID, r.UserType,
		r.Action, r.Changes, r.Version, r.Comment, r.RemoteAddress, r.RequestUUID, r.CreatedAt, nil}
}

// Insert returns the INSERT of rows, with ? placeholders, and its
// arguments. The rows' versions must have been taken by [TakeVersions] in
// the same transaction, which also left out the rows of accounts a gate
// does not record.
func Insert(d dialect.Dialect, rows []Row) (string, []any) {
	return insert(d, rows, false)
}

// InsertTakenSQL is the INSERT of one row whose version is the one
// [TakeVersion] has just taken for its record, read by the INSERT itself;
// its arguments are [Row.TakenArgs].
func InsertTakenSQL(d dialect.Dialect) string {
	sql, _ := insert(d, []Row{{}}, true)
	return sql
}

// TakenArgs are the arguments of [InsertTakenSQL] for r; r.Version is not
// used.
func (r *Row) TakenArgs() []any {
	return []any{r.AccountID, r.AuditableID, r.AuditableType, r.AssociatedID, r.AssociatedType, r.UserID, r.UserType,
		r.Action, r.Changes, r.AuditableType, r.AuditableID, r.Comment, r.RemoteAddress, r.RequestUUID, r.CreatedAt}
}

// insert is [Insert], or with taken [InsertTakenSQL] and its arguments.
func insert(d dialect.Dialect, rows []Row, taken bool) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 16*len(rows))
	b.WriteString(insertInto + "VALUES ")
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
			case insertColumns[j] == "transaction_id":
				b.WriteString(d.TransactionIDSQL())
			case insertColumns[j] == "version" && taken:
				b.WriteString(takenVersion)
				args = append(args, rows[i].AuditableType, rows[i].AuditableID)
			default:
				b.WriteString("?")
				args = append(args, p)
			}
		}
		b.WriteString(")")
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

// WriteInsertSelect writes to stmt the WITH queries of a statement that
// writes its own audit rows, binding its constants as parameters of stmt,
// in the order of [Selected.Vars]:
//
//	"__audit_n" AS (INSERT INTO "audit_versions" ... SELECT <type>, <id>, 1 FROM <From>
//	                WHERE <Where> [AND <enabled account>] ON CONFLICT ... RETURNING ...),
//	"__audit_i" AS (INSERT INTO "audits" (...) SELECT ... FROM <From>
//	                JOIN "__audit_n" ON "__audit_n"."auditable_id" = <id>)
//
// The first takes each record's next version (see bumpVersions) for the
// rows the gate lets through, so that a row it keeps out takes none; the
// second inserts an audit row for each of those. From's rows must each be
// a different record, as the rows one statement wrote are. It needs
// [dialect.Dialect.SingleStatementCapture].
func WriteInsertSelect(stmt *gorm.Statement, d dialect.Dialect, s Selected) {
	vars, next := s.Vars(), 0
	bind := func(typ string) {
		stmt.AddVar(stmt, vars[next])
		next++
		stmt.WriteString(d.Cast(typ))
	}
	stmt.WriteString(`"__audit_n" AS (INSERT INTO "` + VersionsTable + `" ("auditable_type","auditable_id","version") SELECT `)
	bind("text") // AuditableType
	stmt.WriteString(", " + s.AuditableID + ", 1 FROM " + s.From + " WHERE " + s.Where)
	if s.Gated {
		stmt.WriteString(" AND " + EnabledAccount(s.AccountID))
	}
	stmt.WriteString(bumpVersions + `), "__audit_i" AS (` + insertInto + "SELECT " + s.AccountID + ", " + s.AuditableID + ", ")
	bind("text") // AuditableType
	stmt.WriteString(", " + s.AssociatedID + ", CASE WHEN " + s.AssociatedID + " = '' THEN '' ELSE ")
	bind("text") // AssociatedType
	stmt.WriteString(" END")
	for range 3 { // UserID, UserType, Action
		stmt.WriteString(", ")
		bind("text")
	}
	stmt.WriteString(", " + s.Changes + `, "__audit_n"."version"`)
	for range 3 { // Comment, RemoteAddress, RequestUUID
		stmt.WriteString(", ")
		bind("text")
	}
	stmt.WriteString(", ")
	bind("timestamptz") // CreatedAt
	stmt.WriteString(", " + d.TransactionIDSQL() + " FROM " + s.From + ` JOIN "__audit_n" ON "__audit_n"."auditable_id" = ` +
		s.AuditableID + ")")
	if next != len(vars) {
		panic("auditsql: WriteInsertSelect bound a different number of values than Selected.Vars lists")
	}
}

// Vars are the parameters [WriteInsertSelect] binds for s, in order: the
// values that are the same for every audit row of the statement. A caller
// that keeps the statement's text for the next statement of the same shape
// binds these in its place.
func (s Selected) Vars() []any {
	return []any{s.AuditableType, s.AuditableType, s.AssociatedType, s.UserID, s.UserType, s.Action,
		s.Comment, s.RemoteAddress, s.RequestUUID, s.CreatedAt}
}
