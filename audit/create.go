package audit

import (
	"fmt"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// recorderKey carries a create's recorder from beforeCreate, which runs
// before the INSERT, to afterCreate, which runs after it.
const recorderKey = PluginName + ":recorder"

// beforeCreate refuses creates that could not be audited before anything is
// written, and prepares the recorder. For an upsert (ON CONFLICT, as gorm's
// Save issues for a record whose update matched no row) it also locks and
// reads the rows that already exist, whose changes are then updates.
func (p *Plugin) beforeCreate(db *gorm.DB) {
	m := p.audited(db)
	if m == nil {
		p.refuseUnmodelled(db, ActionCreate)
		return
	}
	recs, ok := records(db.Statement.ReflectValue)
	if !ok {
		_ = db.AddError(&WriteError{Type: m.typeName, Action: ActionCreate,
			Err: fmt.Errorf("%w: create from a struct or a slice of structs, not %s", ErrUnsupportedWrite, db.Statement.ReflectValue.Type())})
		return
	}
	r, err := p.start(db, m, ActionCreate)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	if c, upsert := db.Statement.Clauses["ON CONFLICT"]; upsert {
		if err := p.prepareUpsert(db, r, c, recs); err != nil {
			_ = db.AddError(&WriteError{Type: m.typeName, Action: ActionCreate, Err: err})
			return
		}
	} else if p.canFuse(r) && !db.DryRun && db.Statement.SQL.Len() == 0 && !hasClause(db.Statement, "RETURNING") {
		p.fuseCreate(db, r)
	}
	db.Statement.Settings.Store(recorderKey, r)
}

// prepareUpsert reads, and locks, the rows an upsert may overwrite.
func (p *Plugin) prepareUpsert(db *gorm.DB, r *recorder, c clause.Clause, recs []reflect.Value) error {
	oc, _ := c.Expression.(clause.OnConflict)
	if len(oc.Columns) > 1 || (len(oc.Columns) == 1 && oc.Columns[0].Name != r.m.pk.DBName) || oc.OnConstraint != "" {
		return fmt.Errorf("%w: an upsert must conflict on the primary key", ErrUnsupportedWrite)
	}
	keys := make([]any, 0, len(recs))
	for _, rv := range recs {
		pk, zero := r.m.pk.ValueOf(r.ctx, rv)
		if zero {
			return fmt.Errorf("%w: an upsert needs every record's primary key", ErrUnsupportedWrite)
		}
		keys = append(keys, pk)
	}
	olds, err := p.selectRows(db, r.m, []clause.Expression{r.m.pkIn(keys)})
	if err != nil {
		return err
	}
	r.upsertKeys = keys
	r.existing = make(map[string]reflect.Value, len(olds))
	for _, rv := range olds {
		r.existing[key(r.ctx, r.m.pk, rv)] = rv
	}
	return nil
}

// afterCreate records a create: every audited column with the value the
// record was inserted with. After an upsert it reads the rows back and
// records an update for each row that existed before, a create for the rest.
func (p *Plugin) afterCreate(db *gorm.DB) {
	v, ok := db.Statement.Settings.LoadAndDelete(recorderKey)
	if !ok || db.DryRun {
		return
	}
	if db.Error != nil {
		if r := v.(*recorder); r.fused {
			db.Error = r.fusedError(db.Error)
		}
		return
	}
	r := v.(*recorder)
	if r.fused {
		return
	}
	if r.upsertKeys != nil {
		p.afterUpsert(db, r)
		return
	}
	recs, _ := records(db.Statement.ReflectValue)
	if r.addSnapshots(recs) {
		r.flush()
	}
}

func (p *Plugin) afterUpsert(db *gorm.DB, r *recorder) {
	news, err := p.selectRows(db, r.m, []clause.Expression{r.m.pkIn(r.upsertKeys)})
	if err != nil {
		r.fail(err)
		return
	}
	for _, nv := range news {
		if !r.wants(nv) {
			continue
		}
		old, existed := r.existing[key(r.ctx, r.m.pk, nv)]
		if !existed {
			changes, err := r.m.snapshot(r.ctx, nv)
			if err != nil {
				r.fail(err)
				return
			}
			r.add(nv, changes)
			continue
		}
		changes, err := r.m.diff(r.ctx, old, nv)
		if err != nil {
			r.fail(err)
			return
		}
		if len(changes) > 0 {
			r.addAction(nv, ActionUpdate, changes)
		}
	}
	r.flush()
}

// pkIn is the condition "primary key in keys".
func (m *model) pkIn(keys []any) clause.Expression {
	return clause.IN{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}, Values: keys}
}
