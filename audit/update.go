package audit

import (
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
)

// update wraps gorm's own update callback. Statements on models that are not
// audited go to it unchanged. For audited models it runs the same UPDATE,
// bracketed so that old and new values come from the database itself:
//
//  1. SELECT the matching rows (FOR UPDATE on PostgreSQL): the old values,
//     and a lock that keeps concurrent writers of those records, and their
//     version numbers, in order until the transaction ends;
//  2. UPDATE exactly those rows, RETURNING every column: the new values,
//     including what SQL expressions such as position + 1 evaluated to;
//  3. INSERT one audit row per record whose audited columns changed.
func (p *Plugin) update(gormUpdate func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		m := p.audited(db)
		if m == nil {
			gormUpdate(db)
			return
		}
		if db.Statement.SQL.Len() != 0 {
			_ = db.AddError(&WriteError{Type: m.typeName, Action: ActionUpdate, Err: ErrUnsupportedWrite})
			return
		}
		r, err := p.start(db, m, ActionUpdate)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		if r.recordsNone() {
			gormUpdate(db)
			return
		}
		p.auditedUpdate(db, r)
	}
}

// lockBatch bounds the primary keys in one UPDATE ... WHERE pk IN (...).
const lockBatch = 5000

func (p *Plugin) auditedUpdate(db *gorm.DB, r *recorder) {
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

	where, _ := stmt.Clauses["WHERE"].Expression.(clause.Where)
	olds, err := p.selectRows(db, r.m, where.Exprs)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	oldByKey := make(map[string]reflect.Value, len(olds))
	keys := make([]any, 0, len(olds))
	for _, rv := range olds {
		pk, _ := r.m.pk.ValueOf(r.ctx, rv)
		keys = append(keys, pk)
		oldByKey[key(r.ctx, r.m.pk, rv)] = rv
	}

	_, userReturning := stmt.Clauses["RETURNING"]
	if !userReturning {
		stmt.AddClause(clause.Returning{})
		defer delete(stmt.Clauses, "RETURNING")
	}
	var news []reflect.Value
	// The locked rows are exactly the rows the statement's conditions
	// matched, so the UPDATE targets them by primary key; a row inserted
	// meanwhile cannot slip in without its old values.
	for start := 0; start < len(keys); start += lockBatch {
		batch := keys[start:min(start+lockBatch, len(keys))]
		stmt.Clauses["WHERE"] = clause.Clause{Name: "WHERE", Expression: clause.Where{Exprs: []clause.Expression{r.m.pkIn(batch)}}}
		stmt.SQL.Reset()
		stmt.Vars = stmt.Vars[:0]
		stmt.Build(stmt.BuildClauses...)
		rows, err := stmt.ConnPool.QueryContext(r.ctx, stmt.SQL.String(), stmt.Vars...)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		got, err := scanRecords(r.ctx, rows, r.m.schema)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		news = append(news, got...)
	}
	db.RowsAffected = int64(len(news))
	if stmt.Result != nil {
		stmt.Result.RowsAffected = db.RowsAffected
	}
	if userReturning {
		deliverReturning(db, news)
	}

	for _, nv := range news {
		ov, ok := oldByKey[key(r.ctx, r.m.pk, nv)]
		if !ok || !r.wants(nv) {
			continue
		}
		changes, err := r.m.diff(r.ctx, ov, nv)
		if err != nil {
			r.fail(err)
			return
		}
		if len(changes) > 0 {
			r.add(nv, changes)
		}
	}
	r.flush()
}

// selectRows reads the current rows of r's table that match where, locking
// them on PostgreSQL. Soft-delete scoping is whatever where already holds.
func (p *Plugin) selectRows(db *gorm.DB, m *model, where []clause.Expression) ([]reflect.Value, error) {
	q := db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).Table(db.Statement.Table).
		Clauses(clause.Where{Exprs: where})
	if p.postgres {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	return scanRecords(db.Statement.Context, rows, m.schema)
}
