package audit

import (
	"gorm.io/gorm"
)

// recorderKey carries a create's recorder from the guard, which runs before
// the INSERT, to afterCreate, which runs after it.
const recorderKey = PluginName + ":recorder"

// beforeCreate refuses creates that could not be audited before anything is
// written, and prepares the recorder.
func (p *Plugin) beforeCreate(db *gorm.DB) {
	m := p.audited(db)
	if m == nil {
		return
	}
	if _, ok := records(db.Statement.ReflectValue); !ok {
		_ = db.AddError(&WriteError{Type: m.typeName, Action: ActionCreate,
			Err: ErrUnsupportedWrite})
		return
	}
	if _, upsert := db.Statement.Clauses["ON CONFLICT"]; upsert {
		// An upsert may update rows instead of inserting them; recording it
		// as a create would be a lie, and its old values are unknown here.
		_ = db.AddError(&WriteError{Type: m.typeName, Action: ActionCreate,
			Err: ErrUnsupportedWrite})
		return
	}
	r, err := p.start(db, m, ActionCreate)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	db.Statement.Settings.Store(recorderKey, r)
}

// afterCreate records a create: every audited column with the value the
// record was inserted with.
func (p *Plugin) afterCreate(db *gorm.DB) {
	v, ok := db.Statement.Settings.LoadAndDelete(recorderKey)
	if !ok || db.Error != nil || db.DryRun {
		return
	}
	r := v.(*recorder)
	recs, _ := records(db.Statement.ReflectValue)
	for _, rv := range recs {
		if !r.wants(rv) {
			continue
		}
		changes, err := r.m.snapshot(r.ctx, rv)
		if err != nil {
			r.fail(err)
			return
		}
		r.add(rv, changes)
	}
	r.flush()
}
