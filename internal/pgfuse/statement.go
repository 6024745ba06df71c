package pgfuse

import "io"

// Written names, inside a statement, the rows its change wrote; the audit
// INSERT selects from it.
const Written = `"__audit_g"`

// OldRowColumn is the name under which the change's own UPDATE of an
// update statement returns each row as it was.
const OldRowColumn = `"__audit_o"`

// updatedOld and updatedNew are an updated row as it was and as it is,
// inside an update statement.
const (
	updatedOld = `("p".` + OldRowColumn + `)`
	updatedNew = `"p"`
)

// Rows is what the audit INSERT of a statement selects: the rows of From
// for which Where holds, and the audit row's columns as SQL expressions
// over one of them. Each row of From is a different record.
type Rows struct {
	From, Where                                   string
	Changes, AuditableID, AccountID, AssociatedID string
}

// rows is the Rows of Written for which where holds, with audited_changes
// changes.
func (c *Capture) rows(changes, where string) Rows {
	return Rows{From: Written, Where: where, Changes: changes,
		AuditableID: c.auditableID, AccountID: c.accountID, AssociatedID: c.associatedID}
}

// WriteSnapshotStatement writes to w the single statement of a create or a
// delete, whose audit rows hold every audited column:
//
//	WITH "__audit_g" AS (<own>), <insert>
//	SELECT <selectList> FROM "__audit_g"
//
// own writes the change's own statement, which must return every column
// (RETURNING *); insert writes the WITH queries, such as
// "__audit_i" AS (INSERT ...), that insert the audit rows of the rows it is
// given.
func (c *Capture) WriteSnapshotStatement(w io.StringWriter, own func(), insert func(Rows), selectList string) {
	_, _ = w.WriteString("WITH " + Written + " AS (")
	own()
	_, _ = w.WriteString(`), `)
	insert(c.rows(c.snapshot, "TRUE"))
	_, _ = w.WriteString(" SELECT " + selectList + " FROM " + Written)
}

// WriteUpdateStatement writes to w the single statement of an update, which
// writes an audit row for each updated row whose audited columns changed
// and refuses, with gormaudit_refuse_change, a row whose primary key or
// account changed:
//
//	WITH "__audit_p" AS (<own>),
//	     "__audit_g" AS (SELECT "p".*, <diff> AS "__audit_changes",
//	                     <guard> AS "__audit_guard" FROM "__audit_p" AS "p"),
//	     <insert>
//	SELECT "__audit_guard" FROM "__audit_g"
//
// own writes the change's own UPDATE, returning each row as it was, named
// [OldRowColumn], followed by every column of the updated row; insert
// writes the WITH queries that insert the audit rows of the rows it is
// given. The statement returns one row per updated row: reading the guard
// makes PostgreSQL evaluate it for every row updated, whether or not the
// row gets an audit row.
//
// assigned lists the columns the UPDATE's SET assigns, so that the diff
// renders those and only compares the others (their diff when they did
// change); nil renders the diff of every column.
func (c *Capture) WriteUpdateStatement(w io.StringWriter, own func(), insert func(Rows), assigned []string) {
	_, _ = w.WriteString(`WITH "__audit_p" AS (`)
	own()
	if assigned == nil {
		_, _ = w.WriteString(c.updateRows)
	} else {
		_, _ = w.WriteString(c.updateRowsOf(c.assignedDiff(assigned)))
	}
	insert(c.rows(Written+`."__audit_changes"`, Written+`."__audit_changes" IS NOT NULL`))
	_, _ = w.WriteString(` SELECT "__audit_guard" FROM ` + Written)
}
