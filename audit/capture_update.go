package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/gormaudit/gormaudit/internal/pgfuse"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// lockBatch bounds the primary keys in one UPDATE ... WHERE pk IN (...).
const lockBatch = 5000

// auditedUpdate runs an update of an audited model (see Plugin.wrap); it
// runs the same UPDATE so that old and new values come from the database
// itself. On PostgreSQL it is one statement that also writes the audit rows
// (fusedUpdate). Elsewhere:
//
//  1. SELECT the matching rows (FOR UPDATE where supported): the old values,
//     and a lock that keeps concurrent writers of those records, and their
//     version numbers, in order until the transaction ends;
//  2. UPDATE exactly those rows, RETURNING every column: the new values,
//     including what SQL expressions such as position + 1 evaluated to;
//  3. INSERT one audit row per record whose audited columns changed.
func (p *Plugin) auditedUpdate(db *gorm.DB, r *recorder, _ func(*gorm.DB)) {
	stmt := db.Statement
	// The first steps are gorm's callbacks.Update, unchanged.
	for _, c := range stmt.Schema.UpdateClauses {
		stmt.AddClause(c)
	}
	stmt.AddClauseIfNotExists(clause.Update{})
	if _, ok := stmt.Clauses["SET"]; !ok {
		set := callbacks.ConvertToAssignments(stmt)
		if len(set) == 0 {
			return
		}
		defer delete(stmt.Clauses, "SET")
		stmt.AddClause(set)
	}
	if hasMissingWhere(db) {
		_ = db.AddError(gorm.ErrMissingWhereClause)
		return
	}
	if db.DryRun || db.Error != nil {
		stmt.Build(stmt.BuildClauses...)
		return
	}

	_, returned := stmt.Clauses["RETURNING"]
	plainTable := stmt.TableExpr == nil && !hasClause(stmt, "FROM")
	portable, err := r.m.checkAssignments(stmt)
	if err != nil {
		r.fail(err)
		return
	}
	if p.canFuse(r) && plainTable && !returned && !portable {
		n, err := p.fusedUpdate(db, r)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		db.RowsAffected = n
		if stmt.Result != nil {
			stmt.Result.RowsAffected = n
		}
		return
	}
	p.portableUpdate(db, r, plainTable)
}

// portableUpdate runs an update whose audit rows are a second statement,
// inside a savepoint (see guard): the UPDATE returns the rows as written,
// paired with their old values, and their audit rows are inserted.
func (p *Plugin) portableUpdate(db *gorm.DB, r *recorder, plainTable bool) {
	stmt := db.Statement
	g, err := begin(db, false)
	if err != nil {
		r.fail(err)
		return
	}
	defer g.finish(db)
	// The plugin reads every column back, whatever the caller asked for;
	// the caller's RETURNING columns are delivered afterwards.
	userReturning, returned := stmt.Clauses["RETURNING"]
	stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{}}
	var olds, news []reflect.Value
	if p.dialect.SingleStatementCapture() && plainTable {
		olds, news, err = p.updateReturningOld(db, r)
	} else {
		olds, news, err = p.updateAfterSelect(db, r)
	}
	if returned {
		stmt.Clauses["RETURNING"] = userReturning
	} else {
		delete(stmt.Clauses, "RETURNING")
	}
	if err != nil {
		_ = db.AddError(err)
		return
	}
	for i := range news {
		if !r.recordUpdate(olds[i], news[i], ActionUpdate) {
			return
		}
	}
	r.flush()
	if db.Error != nil {
		return
	}
	db.RowsAffected = int64(len(news))
	if stmt.Result != nil {
		stmt.Result.RowsAffected = db.RowsAffected
	}
	if returned {
		deliverReturning(db, news, userReturning)
	}
}

// updateAfterSelect is the portable update: SELECT the matching rows (the
// old values; FOR UPDATE where supported), then UPDATE exactly those rows by
// primary key with RETURNING (the new values). A row inserted between the
// two statements cannot slip into the UPDATE without its old values.
func (p *Plugin) updateAfterSelect(db *gorm.DB, r *recorder) (olds, news []reflect.Value, err error) {
	stmt := db.Statement
	where, _ := stmt.Clauses["WHERE"].Expression.(clause.Where)
	olds, err = p.selectRows(db, r.m, where.Exprs)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]any, 0, len(olds))
	for _, rv := range olds {
		pk, _ := r.m.pk.ValueOf(r.ctx, rv)
		keys = append(keys, pk)
	}
	for start := 0; start < len(keys); start += lockBatch {
		batch := keys[start:min(start+lockBatch, len(keys))]
		stmt.Clauses["WHERE"] = clause.Clause{Name: "WHERE", Expression: clause.Where{Exprs: []clause.Expression{r.m.pkIn(batch)}}}
		stmt.SQL.Reset()
		stmt.Vars = stmt.Vars[:0]
		stmt.Build(stmt.BuildClauses...)
		rows, err := p.prepared.query(r.ctx, stmt.ConnPool, stmt.SQL.String(), stmt.Vars...)
		if err != nil {
			return nil, nil, err
		}
		got, err := scanRecords(r.ctx, rows, r.m.schema)
		if err != nil {
			return nil, nil, err
		}
		news = append(news, got...)
	}
	return pairByKey(r, olds, news)
}

// pairByKey orders olds to match news by primary key. A new row whose key
// no old row has is a record whose primary key the update changed.
func pairByKey(r *recorder, olds, news []reflect.Value) (pairedOlds, _ []reflect.Value, err error) {
	oldByKey := make(map[string]reflect.Value, len(olds))
	for _, rv := range olds {
		oldByKey[key(r.ctx, r.m.pk, rv)] = rv
	}
	pairedOlds = make([]reflect.Value, len(news))
	for i, nv := range news {
		ov, ok := oldByKey[key(r.ctx, r.m.pk, nv)]
		if !ok {
			return nil, nil, &WriteError{Type: r.m.typeName, Action: ActionUpdate,
				Err: fmt.Errorf("%w: the update changed the primary key %s (to %s)", ErrUnsupportedWrite, r.m.pk.DBName, key(r.ctx, r.m.pk, nv))}
		}
		pairedOlds[i] = ov
	}
	return pairedOlds, news, nil
}

// updateReturningOld is the PostgreSQL update: one statement that locks the
// matching rows, updates them and returns both versions of each,
//
//	UPDATE "steps" SET ...
//	FROM (SELECT "steps"."id" AS "__audit_pk", "steps" AS "__audit_old"
//	      FROM "steps" WHERE <the statement's conditions> FOR UPDATE) AS "__audit"
//	WHERE "steps"."id" = "__audit"."__audit_pk"
//	RETURNING ("__audit"."__audit_old").*, "steps".*
//
// The sub-select locks each row before the UPDATE reaches it and yields the
// row as it is once locked, so the old values are the ones the UPDATE
// replaces even when concurrent writers queue on the same rows. It saves
// the separate SELECT round trip of updateAfterSelect.
func (p *Plugin) updateReturningOld(db *gorm.DB, r *recorder) (olds, news []reflect.Value, err error) {
	stmt := db.Statement
	stmt.SQL.Reset()
	stmt.Vars = stmt.Vars[:0]
	writeLockingUpdate(stmt, r.m.pk.DBName, `("__audit"."__audit_old").*`)
	rows, err := stmt.ConnPool.QueryContext(r.ctx, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		return nil, nil, err
	}
	return scanPairs(r.ctx, rows, r.m.schema)
}

// writeLockingUpdate writes the statement's UPDATE of the rows its
// conditions match, locked by a sub-select that also yields each row as it
// was, and returning oldColumns (an expression over "__audit"."__audit_old")
// followed by every column of the updated row:
//
//	UPDATE "t" SET ... FROM (SELECT "t"."pk" AS "__audit_pk", "t" AS "__audit_old"
//	  FROM "t" WHERE <conditions> FOR UPDATE) AS "__audit"
//	WHERE "t"."pk" = "__audit"."__audit_pk" RETURNING <oldColumns>, "t".*
func writeLockingUpdate(stmt *gorm.Statement, pk, oldColumns string) {
	stmt.Build("UPDATE", "SET")
	stmt.WriteString(" FROM (SELECT ")
	stmt.WriteQuoted(clause.Column{Table: stmt.Table, Name: pk})
	stmt.WriteString(` AS "__audit_pk", `)
	stmt.WriteQuoted(stmt.Table)
	stmt.WriteString(` AS "__audit_old" FROM `)
	stmt.WriteQuoted(stmt.Table)
	stmt.WriteByte(' ')
	stmt.Build("WHERE")
	stmt.WriteString(` FOR UPDATE) AS "__audit" WHERE `)
	stmt.WriteQuoted(clause.Column{Table: stmt.Table, Name: pk})
	stmt.WriteString(` = "__audit"."__audit_pk" RETURNING ` + oldColumns + `, `)
	stmt.WriteQuoted(stmt.Table)
	stmt.WriteString(".*")
}

func hasClause(stmt *gorm.Statement, name string) bool {
	_, ok := stmt.Clauses[name]
	return ok
}

// selectRows reads the current rows of r's table that match where, locking
// them on PostgreSQL. Soft-delete scoping is whatever where already holds.
//
//	SELECT * FROM <table> WHERE <where> [FOR UPDATE]
func (p *Plugin) selectRows(db *gorm.DB, m *model, where []clause.Expression) ([]reflect.Value, error) {
	q := &gorm.Statement{DB: db, ConnPool: db.Statement.ConnPool, Context: db.Statement.Context,
		Table: db.Statement.Table, Clauses: map[string]clause.Clause{}}
	q.AddClause(clause.Select{})
	q.AddClause(clause.From{})
	q.AddClause(clause.Where{Exprs: where})
	if p.dialect.LocksRows() {
		q.AddClause(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	q.Build("SELECT", "FROM", "WHERE", "FOR")
	rows, err := p.prepared.query(q.Context, q.ConnPool, q.SQL.String(), q.Vars...)
	if err != nil {
		return nil, err
	}
	return scanRecords(q.Context, rows, m.schema)
}

// checkSameRecord refuses a write that gives a record another primary key
// or moves it to another account: its history would no longer be one
// record's, filed under one account.
func (m *model) checkSameRecord(ctx context.Context, old, new reflect.Value) error {
	if from, to := key(ctx, m.pk, old), key(ctx, m.pk, new); from != to {
		return fmt.Errorf("%w: the primary key %s changed from %s to %s", ErrUnsupportedWrite, m.pk.DBName, from, to)
	}
	if m.account != nil {
		if from, to := m.accountOf(ctx, old), m.accountOf(ctx, new); from != to {
			return &AccountMoveError{Ref: Ref{Type: m.typeName, ID: key(ctx, m.pk, new)}, From: from, To: to}
		}
	}
	return nil
}

// fusedUpdate runs an update on PostgreSQL as one statement
// (pgfuse.Capture.WriteUpdateStatement) that locks the matching rows,
// updates them, and writes an audit row for each whose audited columns
// changed. Its own part is writeLockingUpdate's, returning each row as it
// was before the updated row:
//
//	UPDATE "steps" SET ... FROM (SELECT "steps"."id" AS "__audit_pk", "steps" AS "__audit_old"
//	  FROM "steps" WHERE <conditions> FOR UPDATE) AS "__audit"
//	WHERE "steps"."id" = "__audit"."__audit_pk"
//	RETURNING "__audit"."__audit_old" AS "__audit_o", "steps".*
//
// The sub-select locks each row before the UPDATE reaches it and yields it
// as it is once locked, so the old values are the ones replaced even when
// concurrent writers queue on the same rows. It returns the rows updated.
func (p *Plugin) fusedUpdate(db *gorm.DB, r *recorder) (int64, error) {
	stmt := db.Statement
	stmt.SQL.Reset()
	stmt.Vars = stmt.Vars[:0]
	writeLockingUpdate(stmt, r.m.pk.DBName, `"__audit"."__audit_old" AS `+pgfuse.OldRowColumn)
	r.fuse(stmt, ActionUpdate, "", func(own func()) {
		r.m.fuse.WriteUpdateStatement(stmt, own, r.insertAudits(stmt, ActionUpdate), r.m.assigned(stmt))
	})
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

// assigned lists the columns the statement's SET assigns, by their names
// in the database.
func (m *model) assigned(stmt *gorm.Statement) []string {
	set, _ := stmt.Clauses["SET"].Expression.(clause.Set)
	names := make([]string, 0, len(set))
	for _, a := range set {
		if f := m.schema.LookUpField(a.Column.Name); f != nil && f.DBName != "" {
			names = append(names, f.DBName)
		} else {
			names = append(names, a.Column.Name)
		}
	}
	return names
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
		if recordable(a.Value, isJSONColumn(f)) {
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
