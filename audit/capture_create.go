package audit

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/gormaudit/gormaudit/internal/pgfuse"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// auditedCreate runs a create of an audited model (see Plugin.wrap);
// gormCreate is gorm's own create callback. Every audit row is computed from
// the row as the database stored it (column defaults, Omit and Select, type
// conversions), never from the caller's struct:
//
//   - on PostgreSQL, a plain INSERT becomes one statement that also writes
//     the audit rows (fuseCreate), and gorm runs it;
//   - otherwise, and for every upsert, the plugin runs the INSERT itself
//     with RETURNING every column (insertReturning), inside a savepoint.
func (p *Plugin) auditedCreate(db *gorm.DB, r *recorder, gormCreate func(*gorm.DB)) {
	if db.DryRun {
		gormCreate(db)
		return
	}
	// Values the encoder refuses are refused before anything is
	// written; what the database stores is checked again afterwards.
	recs, _ := records(db.Statement.ReflectValue)
	for _, rv := range recs {
		if err := r.m.check(r.ctx, rv); err != nil {
			r.fail(err)
			return
		}
	}
	_, upsert := db.Statement.Clauses["ON CONFLICT"]
	_, userReturning := db.Statement.Clauses["RETURNING"]
	switch {
	case !upsert && !userReturning && p.canFuse(r):
		p.fuseCreate(db, r)
		gormCreate(db)
		if db.Error != nil {
			db.Error = r.fusedError(db.Error)
		}
	default:
		p.insertReturning(db, r)
	}
}

// refuseCreate names why a create cannot be audited, before anything is
// written: values that are not structs (a map), SQL the caller built, and
// SQLite's INSERT OR IGNORE / OR REPLACE, which can skip or silently
// delete other rows.
func refuseCreate(stmt *gorm.Statement) error {
	if _, ok := records(stmt.ReflectValue); !ok {
		return fmt.Errorf("%w: create from a struct or a slice of structs, not %s", ErrUnsupportedWrite, stmt.ReflectValue.Type())
	}
	if stmt.SQL.Len() != 0 {
		return fmt.Errorf("%w: the statement's SQL was built before the create callback", ErrUnsupportedWrite)
	}
	if c, ok := stmt.Clauses["INSERT"]; ok {
		if ins, _ := c.Expression.(clause.Insert); ins.Modifier != "" {
			return fmt.Errorf("%w: INSERT %s (use clause.OnConflict on the primary key)", ErrUnsupportedWrite, ins.Modifier)
		}
	}
	return nil
}

// conflictColumn is the name of the flag insertReturning asks PostgreSQL
// for: whether the upsert inserted the row (true) or updated one (false).
const conflictColumn = "__audit_inserted"

// maxUpsertAttempts bounds the retries of an upsert that met a row another
// transaction inserted while it ran.
const maxUpsertAttempts = 3

// insertReturning runs the create itself, as gorm's create callback would
// build it, returning every column of the rows written, and records them:
// a create for each row inserted, an update for each row an upsert
// changed, nothing for a row an upsert left alone.
//
// An upsert first reads, and locks, the rows it may overwrite: their old
// values. On PostgreSQL a row can still appear between that read and the
// INSERT (another transaction inserting the same key commits while this one
// waits for it); the INSERT then updates a row whose old values were not
// read. PostgreSQL says so (the returned row's xmax is not 0), and the
// attempt is rolled back to its savepoint and repeated with a fresh read,
// which now sees and locks that row.
func (p *Plugin) insertReturning(db *gorm.DB, r *recorder) {
	stmt := db.Statement
	ins, err := p.buildInsert(stmt, r.m)
	if err != nil {
		_ = db.AddError(&WriteError{Type: r.m.typeName, Action: ActionCreate, Err: err})
		return
	}
	for attempt := 1; ; attempt++ {
		g, err := begin(db, ins.updates)
		if err != nil {
			_ = db.AddError(&WriteError{Type: r.m.typeName, Action: ActionCreate, Err: err})
			return
		}
		raced := p.insertAttempt(db, r, ins)
		if raced && db.Error == nil {
			g.undo()
			r.rows = nil
			if attempt < maxUpsertAttempts {
				continue
			}
			r.fail(fmt.Errorf("%w: rows kept appearing under the upsert's keys", ErrVersionConflict))
			return
		}
		g.finish(db)
		return
	}
}

// builtInsert is a create statement built once for every attempt.
type builtInsert struct {
	sql      string
	vars     []any
	updates  bool            // an upsert that may update existing rows
	deliver  []*schema.Field // what gorm would have scanned back into the records
	returned bool            // the caller asked for RETURNING
}

// buildInsert builds the INSERT as gorm's create callback does, returning
// every column, and checks that an upsert conflicts on the primary key.
func (p *Plugin) buildInsert(stmt *gorm.Statement, m *model) (*builtInsert, error) {
	b := &builtInsert{}
	if !stmt.Unscoped {
		for _, c := range stmt.Schema.CreateClauses {
			stmt.AddClause(c)
		}
	}
	userReturning, returned := stmt.Clauses["RETURNING"]
	b.returned = returned
	b.deliver = deliveredFields(stmt, userReturning, returned)
	stmt.AddClauseIfNotExists(clause.Insert{})
	stmt.AddClause(callbacks.ConvertToCreateValues(stmt))
	if stmt.Error != nil {
		return nil, stmt.Error
	}
	if c, ok := stmt.Clauses["ON CONFLICT"]; ok {
		oc, _ := c.Expression.(clause.OnConflict)
		b.updates = !oc.DoNothing
		onKey := len(oc.Columns) == 1 && oc.Columns[0].Name == m.pk.DBName && oc.OnConstraint == ""
		if b.updates && !onKey {
			return nil, fmt.Errorf("%w: an upsert that updates must conflict on the primary key", ErrUnsupportedWrite)
		}
	}
	stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{}}
	stmt.Build(stmt.BuildClauses...)
	if returned {
		stmt.Clauses["RETURNING"] = userReturning
	} else {
		delete(stmt.Clauses, "RETURNING")
	}
	b.sql, b.vars = stmt.SQL.String(), stmt.Vars
	if inserted := p.dialect.InsertedByUpsertSQL(); b.updates && inserted != "" {
		b.sql += `, ` + inserted + ` AS "` + conflictColumn + `"`
	}
	return b, nil
}

// insertAttempt runs one attempt of insertReturning. It reports raced when
// an upsert updated a row it had not read before.
func (p *Plugin) insertAttempt(db *gorm.DB, r *recorder, b *builtInsert) (raced bool) {
	stmt := db.Statement
	recs, _ := records(stmt.ReflectValue)
	var existing map[string]reflect.Value
	if b.updates {
		var err error
		if existing, err = p.lockExisting(db, r.m, recs); err != nil {
			r.fail(err)
			return false
		}
	}
	rows, err := p.prepared.query(r.ctx, stmt.ConnPool, b.sql, b.vars...)
	if err != nil {
		_ = db.AddError(err)
		return false
	}
	written, inserted, err := scanWritten(r.ctx, rows, r.m.schema)
	if err != nil {
		_ = db.AddError(err)
		return false
	}
	for i, rv := range written {
		old, existed := existing[key(r.ctx, r.m.pk, rv)]
		switch {
		case existed:
			if !r.recordUpdate(old, rv, ActionUpdate) {
				return false
			}
		case inserted != nil && !inserted[i]:
			return true
		default:
			if !r.addSnapshots(written[i : i+1]) {
				return false
			}
		}
	}
	r.flush()
	if db.Error == nil {
		deliverCreated(db, recs, written, b.deliver, r.m)
		db.RowsAffected = int64(len(written))
		if stmt.Result != nil {
			stmt.Result.RowsAffected = db.RowsAffected
		}
	}
	return false
}

// lockExisting reads, and locks on PostgreSQL, the rows an upsert may
// overwrite: those whose primary keys the records carry. A record without
// a key (the database assigns it) can only be inserted.
func (p *Plugin) lockExisting(db *gorm.DB, m *model, recs []reflect.Value) (map[string]reflect.Value, error) {
	ctx := db.Statement.Context
	keys := make([]any, 0, len(recs))
	for _, rv := range recs {
		if pk, zero := m.pk.ValueOf(ctx, rv); !zero {
			keys = append(keys, pk)
		}
	}
	existing := make(map[string]reflect.Value, len(keys))
	if len(keys) == 0 {
		return existing, nil
	}
	olds, err := p.selectRows(db, m, []clause.Expression{m.pkIn(keys)})
	if err != nil {
		return nil, err
	}
	for _, rv := range olds {
		existing[key(ctx, m.pk, rv)] = rv
	}
	return existing, nil
}

// records returns the struct values a create statement wrote: one for a
// struct, one per element for a slice or array. ok is false for forms that
// hold no structs, such as maps.
func records(rv reflect.Value) (out []reflect.Value, ok bool) {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Struct:
		return []reflect.Value{rv}, true
	case reflect.Slice, reflect.Array:
		out = make([]reflect.Value, 0, rv.Len())
		for i := 0; i < rv.Len(); i++ {
			elem := rv.Index(i)
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Interface {
				if elem.IsNil() {
					return nil, false
				}
				elem = elem.Elem()
			}
			if elem.Kind() != reflect.Struct {
				return nil, false
			}
			out = append(out, elem)
		}
		return out, true
	}
	return nil, false
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
	stmt.AddClauseIfNotExists(clause.Insert{})
	stmt.AddClause(callbacks.ConvertToCreateValues(stmt))

	stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{}}
	stmt.Build(stmt.BuildClauses...)
	returned := r.m.defaultsReturned()
	if len(returned.columns) > 0 {
		stmt.Clauses["RETURNING"] = clause.Clause{Name: "RETURNING", Expression: clause.Returning{Columns: returned.columns}}
	} else {
		delete(stmt.Clauses, "RETURNING")
	}
	r.wrapFused(stmt, ActionCreate, returned.selectList)
}

// createReturned is what gorm's create reads back of a new row: the
// readable columns with a database default, and their select list; "1"
// (counted by gorm as the rows affected) when there are none.
type createReturned struct {
	columns    []clause.Column
	selectList string
}

// defaultsReturned is the model's createReturned, worked out once.
func (m *model) defaultsReturned() *createReturned {
	m.returnedOnce.Do(func() {
		m.returned = &createReturned{selectList: "1"}
		var names []string
		for _, f := range m.schema.FieldsWithDefaultDBValue {
			if f.Readable {
				m.returned.columns = append(m.returned.columns, clause.Column{Name: f.DBName})
				names = append(names, pgfuse.QuoteIdent(f.DBName))
			}
		}
		if len(names) > 0 {
			m.returned.selectList = strings.Join(names, ", ")
		}
	})
	return m.returned
}
