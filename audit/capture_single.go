package audit

import (
	"fmt"
	"strings"

	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
	"github.com/gormaudit/gormaudit/internal/pgfuse"
)

// On PostgreSQL a write and its audit rows are one statement: the INSERT,
// DELETE or soft delete's UPDATE becomes a data-modifying CTE whose
// returned rows a second CTE inserts as audit rows, so an audited write
// costs no extra round trip. internal/pgfuse renders the statements'
// model-specific SQL once, at registration (prepareCapture), matching
// encodeValue; the audit INSERT itself is auditsql's
// (auditsql.WriteInsertSelect), which takes each record's version from its
// counter in audit_versions in a WITH query of the same statement. This file holds what the capture strategies share:
// whether a write can be captured so, the INSERT, and naming its failures.

// fuseRules are the encoder's rules the single-statement SQL follows.
var fuseRules = pgfuse.Rules{RedactedValue: RedactedValue, MaxNesting: MaxNestingDepth, JSONNullReason: errJSONNull.Reason}

// prepareCapture builds, once, the SQL of the model's single-statement
// writes; m.fuse stays nil when PostgreSQL cannot render every audited
// column exactly as encodeValue renders it.
func (m *model) prepareCapture(db *gorm.DB) {
	desc := pgfuse.Model{PK: pgfuse.Key{Name: m.pk.DBName, Integer: isInteger(m.pk.FieldType)}}
	for _, f := range m.fields {
		desc.Columns = append(desc.Columns, pgfuse.Column{Name: f.DBName,
			SQLType: strings.ToLower(db.Migrator().FullDataTypeOf(f).SQL), JSON: isJSONColumn(f),
			Plain: plainRendering(f.FieldType), Redacted: m.redact[f.DBName]})
	}
	if m.account != nil {
		desc.Account = m.account.DBName
	}
	if m.assocField != nil {
		desc.Associated = &pgfuse.Key{Name: m.assocField.DBName, Integer: isInteger(m.assocField.FieldType)}
	}
	m.fuse, _ = pgfuse.Build(desc, fuseRules)
}

// canFuse reports whether r's audit rows can be written by the change's own
// statement.
func (p *Plugin) canFuse(r *recorder) bool {
	return p.dialect.SingleStatementCapture() && r.m.fuse != nil
}

// selected is what the audit INSERT of r's single statement of action
// inserts, for the rows it is given.
func (r *recorder) selected(action Action, rows pgfuse.Rows) auditsql.Selected {
	m := r.m
	return auditsql.Selected{
		From: rows.From, Where: rows.Where,
		AccountID: rows.AccountID, AuditableID: rows.AuditableID, AssociatedID: rows.AssociatedID, Changes: rows.Changes,
		AuditableType: m.typeName, AssociatedType: m.assocType, UserID: r.who.UserID, UserType: r.who.UserType,
		Action: string(action), Comment: r.who.Comment, RemoteAddress: r.who.RemoteAddress,
		RequestUUID: r.who.RequestUUID, CreatedAt: r.who.CreatedAt, Gated: r.gated,
	}
}

// insertAudits returns the writer of a single statement's audit INSERT:
// the audit rows of the rows it is given, binding the context's values as
// parameters of stmt.
func (r *recorder) insertAudits(stmt *gorm.Statement, action Action) func(pgfuse.Rows) {
	return func(rows pgfuse.Rows) {
		auditsql.WriteInsertSelect(stmt, r.p.dialect, r.selected(action, rows))
	}
}

// fusedShape identifies the text of a single statement: the change's own
// SQL, with its parameters as placeholders, and what is around it. Every
// statement of one shape has the same text; only its parameters differ.
type fusedShape struct {
	action     Action
	own        string
	vars       int // the own part's parameters
	selectList string
}

// fusedText is the text of the single statements of one shape, and where
// their own part lies in it (see ownPart).
type fusedText struct {
	sql      string
	from, to int
}

// maxFusedTexts bounds the texts a model keeps: shapes are few (one per
// write form and set of assigned columns), but an IN list of every length
// is a shape of its own.
const maxFusedTexts = 512

// fuse turns the change's own statement, built in stmt with its
// parameters, into the single statement that also writes its audit rows.
// write writes that statement around own, which writes the own part; its
// text is kept per shape, so the next statement of the shape only binds
// the audit INSERT's parameters (auditsql.Selected.Vars).
func (r *recorder) fuse(stmt *gorm.Statement, action Action, selectList string, write func(own func())) {
	shape := fusedShape{action: action, own: stmt.SQL.String(), vars: len(stmt.Vars), selectList: selectList}
	if t, ok := r.m.fusedTexts.Load(shape); ok {
		text := t.(*fusedText)
		stmt.SQL.Reset()
		stmt.SQL.WriteString(text.sql)
		stmt.Vars = append(stmt.Vars, r.selected(action, pgfuse.Rows{}).Vars()...)
		r.own.from, r.own.to = text.from, text.to
		return
	}
	stmt.SQL.Reset()
	write(r.ownPart(stmt, func() { stmt.SQL.WriteString(shape.own) }))
	if r.m.fusedCount.Load() < maxFusedTexts {
		if _, loaded := r.m.fusedTexts.LoadOrStore(shape, &fusedText{sql: stmt.SQL.String(), from: r.own.from, to: r.own.to}); !loaded {
			r.m.fusedCount.Add(1)
		}
	}
}

// wrapFused turns the statement's SQL, which must return every column
// (RETURNING *), into the single statement of a create or delete,
// selecting selectList from the written rows.
func (r *recorder) wrapFused(stmt *gorm.Statement, action Action, selectList string) {
	r.fuse(stmt, action, selectList, func(own func()) {
		r.m.fuse.WriteSnapshotStatement(stmt, own, r.insertAudits(stmt, action), selectList)
	})
}

// ownPart returns the writer of the change's own part of a single
// statement: it runs write and notes where that part lies in the
// statement's text, in characters from 1 as PostgreSQL reports error
// positions.
func (r *recorder) ownPart(stmt *gorm.Statement, write func()) func() {
	return func() {
		r.own.from = utf8.RuneCountInString(stmt.SQL.String()) + 1
		write()
		r.own.to = utf8.RuneCountInString(stmt.SQL.String())
	}
}

// refusal turns an error raised by gormaudit_refuse_change back into the typed
// error it stands for; nil for any other error.
func (m *model) refusal(e dialect.Error) error {
	switch e.Code {
	case pgfuse.CodeKeyChange:
		return fmt.Errorf("%w: the update changed the primary key %s from %s to %s", ErrUnsupportedWrite, m.pk.DBName, e.Detail, e.Hint)
	case pgfuse.CodeAccountMove:
		a := &AccountMoveError{Ref: Ref{Type: m.typeName, ID: e.Detail}}
		_, _ = fmt.Sscan(e.Hint, &a.From, &a.To)
		return a
	}
	return nil
}

// fusedError names the failure of a fused statement: a *WriteError unless
// the database blamed the change itself (see changesOwn). A serialization
// failure is the audit's version conflict (see insertError): the
// database does not say whether the record's row or its version counter
// moved after the snapshot, and either means that another transaction
// wrote, and recorded a version of, the record first.
func (r *recorder) fusedError(err error) error {
	e, ok := dialect.Classify(err)
	if !ok {
		return err
	}
	if refused := r.m.refusal(e); refused != nil {
		return &WriteError{Type: r.m.typeName, Action: r.action, Err: refused}
	}
	if e.Code == pgfuse.CodeValue {
		return &WriteError{Type: r.m.typeName, Action: r.action,
			Err: &ValueError{Column: e.Column, Reason: e.Detail}}
	}
	if e.Kind != dialect.KindSerializationFailure && r.changesOwn(e) {
		return err
	}
	return &WriteError{Type: r.m.typeName, Action: r.action, Err: insertError(err)}
}

// changesOwn reports whether the database blamed a fused statement's
// failure on the change rather than on its audit rows: an error about the
// audited table, a deadlock, an interruption or the connection, a statement
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
	case dialect.KindDeadlock, dialect.KindInterrupted, dialect.KindConnection:
		return true
	case dialect.KindSyntaxOrAccess:
		return e.Position >= r.own.from && e.Position <= r.own.to
	case dialect.KindDataException:
		return e.Table != auditsql.Table
	}
	return false
}
