package audit

import (
	"database/sql"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// auditedDelete runs a delete of an audited model (see Plugin.wrap); it runs
// the same DELETE (or, for soft-deleted models, the same UPDATE of the
// deletion column) with RETURNING every column, and records each returned
// row as a destroy: the statement itself locks and reports exactly the rows
// it removed, so no read beforehand is needed. On PostgreSQL the same
// statement also inserts the audit rows (see capture_single.go).
func (p *Plugin) auditedDelete(db *gorm.DB, r *recorder, _ func(*gorm.DB)) {
	stmt := db.Statement
	// Every column is returned, whatever the caller asked for: the caller's
	// RETURNING columns are delivered afterwards. Set before the schema's
	// delete clauses: a soft delete builds its UPDATE as soon as its clause
	// is added.
	userReturning, returned := stmt.Clauses["RETURNING"]
	stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{}}
	defer func() {
		if returned {
			stmt.Clauses["RETURNING"] = userReturning
		} else {
			delete(stmt.Clauses, "RETURNING")
		}
	}()
	// From here on, gorm's callbacks.Delete, scanning into fresh values.
	for _, c := range stmt.Schema.DeleteClauses {
		stmt.AddClause(c)
	}
	if stmt.SQL.Len() == 0 {
		stmt.AddClauseIfNotExists(clause.Delete{})
		addPrimaryKeyConditions(stmt, stmt.ReflectValue)
		if stmt.ReflectValue.CanAddr() && stmt.Dest != stmt.Model && stmt.Model != nil {
			addPrimaryKeyConditions(stmt, reflect.ValueOf(stmt.Model))
		}
		stmt.AddClauseIfNotExists(clause.From{})
		stmt.Build(stmt.BuildClauses...)
	}
	if hasMissingWhere(db) {
		_ = db.AddError(gorm.ErrMissingWhereClause)
		return
	}
	if db.DryRun || db.Error != nil {
		return
	}
	if p.canFuse(r) {
		p.fusedDelete(db, r, returned, userReturning)
		return
	}
	g, err := begin(db, false)
	if err != nil {
		r.fail(err)
		return
	}
	defer g.finish(db)
	rows, err := p.prepared.query(r.ctx, stmt.ConnPool, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	gone, err := scanRecords(r.ctx, rows, r.m.schema)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	if r.addSnapshots(gone) {
		r.flush()
	}
	if db.Error != nil {
		return
	}
	setRowsAffected(db, int64(len(gone)))
	if returned {
		deliverReturning(db, gone, userReturning)
	}
}

// fusedDelete runs a delete whose audit rows the statement writes itself
// (see capture_single.go). It reads the rows removed back only when the
// caller asked for them (returned); otherwise it counts them.
func (p *Plugin) fusedDelete(db *gorm.DB, r *recorder, returned bool, userReturning clause.Clause) {
	stmt := db.Statement
	selectList := "1"
	if returned {
		selectList = "*"
	}
	r.wrapFused(stmt, ActionDestroy, selectList)
	rows, err := stmt.ConnPool.QueryContext(r.ctx, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		_ = db.AddError(r.fusedError(err))
		return
	}
	if !returned {
		n, err := countRows(rows)
		if err != nil {
			_ = db.AddError(r.fusedError(err))
			return
		}
		setRowsAffected(db, n)
		return
	}
	gone, err := scanRecords(r.ctx, rows, r.m.schema)
	if err != nil {
		_ = db.AddError(r.fusedError(err))
		return
	}
	setRowsAffected(db, int64(len(gone)))
	deliverReturning(db, gone, userReturning)
}

// countRows counts rows and closes them.
func countRows(rows *sql.Rows) (n int64, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// setRowsAffected reports n rows written, as gorm's own callback would.
func setRowsAffected(db *gorm.DB, n int64) {
	db.RowsAffected = n
	if db.Statement.Result != nil {
		db.Statement.Result.RowsAffected = n
	}
}

// addPrimaryKeyConditions restricts a delete to the primary keys held by rv,
// as gorm does for db.Delete(&record).
func addPrimaryKeyConditions(stmt *gorm.Statement, rv reflect.Value) {
	_, values := schema.GetIdentityFieldValuesMap(stmt.Context, rv, stmt.Schema.PrimaryFields)
	column, queryValues := schema.ToQueryValues(stmt.Table, stmt.Schema.PrimaryFieldDBNames, values)
	if len(queryValues) > 0 {
		stmt.AddClause(clause.Where{Exprs: []clause.Expression{clause.IN{Column: column, Values: queryValues}}})
	}
}
