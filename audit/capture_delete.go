package audit

import (
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
	fused := p.canFuse(r)
	if fused {
		r.wrapFused(stmt, ActionDestroy, "*")
	} else {
		g, err := begin(db)
		if err != nil {
			r.fail(err)
			return
		}
		defer g.finish(db)
	}
	rows, err := stmt.ConnPool.QueryContext(r.ctx, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		if fused {
			err = r.fusedError(err)
		}
		_ = db.AddError(err)
		return
	}
	gone, err := scanRecords(r.ctx, rows, r.m.schema)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	if !fused && r.addSnapshots(gone) {
		r.flush()
	}
	if db.Error != nil {
		return
	}
	db.RowsAffected = int64(len(gone))
	if stmt.Result != nil {
		stmt.Result.RowsAffected = db.RowsAffected
	}
	if returned {
		deliverReturning(db, gone, userReturning)
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
