package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
)

// Plan is what a revert writes, or with [RevertOptions].DryRun would write:
// one entry per
// record that differs from the state reverted to.
type Plan struct {
	Records []RecordPlan `json:"records"`
}

// RecordPlan is what a revert does to one record.
type RecordPlan struct {
	Ref
	// Version is the record's version reverted to (0: before its first
	// recorded version).
	Version int `json:"version"`
	// Exists reports whether the record existed at the point reverted to;
	// false means it was absent then (not yet created, or deleted), so the
	// revert removes it.
	Exists bool `json:"exists"`
	// Action is the write: ActionUpdate (changed columns, including
	// clearing a soft-delete column to restore a discarded row),
	// ActionCreate (re-inserting a hard-deleted row with the same primary
	// key) or ActionDestroy (removing a record that did not exist then:
	// discarding it when the model has a soft-delete column). It is empty
	// when nothing is written, because only redacted or skipped columns
	// differ.
	Action Action `json:"action,omitempty"`
	// Changes is {column: [current, reverted]} for each audited column
	// written, with null for the current value of a re-inserted record.
	// Empty for ActionDestroy.
	Changes Changes `json:"changes,omitempty"`
	// Redacted lists redacted columns whose value at the version cannot be
	// known. A revert keeps their current values; a re-inserted record gets
	// their zero values.
	Redacted []string `json:"redacted,omitempty"`
	// Skipped lists columns left out under [ReadOptions].SkipSchemaDrift.
	Skipped []string `json:"skipped,omitempty"`
}

// Revert writes record (typ, id) back to its state at version version, in
// one transaction and through gorm, so that the revert is itself audited:
// as an update, as a create when a hard-deleted row is re-inserted with the
// same primary key, or as a destroy when the record did not exist at that
// version. The audit rows carry the context's actor and a comment naming
// the version. Reverting to the current state writes nothing.
//
// Redacted columns are never written: their past values are not recorded.
// Columns gorm does not audit (created_at, updated_at, ignored columns) keep
// their current values, or their zero or default values on a re-insert.
// See [Plan] for what is written, and [RevertOptions] (nil for the
// defaults) to only preview it or to receive the plan.
func Revert(ctx context.Context, db *gorm.DB, typ, id string, version int, opts *RevertOptions) error {
	return revert(ctx, db, []Ref{{typ, id}}, point{version: version}, revertOptions(opts), fmt.Sprintf("revert to version %d", version))
}

// RevertAsOf is [Revert] to the record's state at moment t (see
// [StateAsOf]).
func RevertAsOf(ctx context.Context, db *gorm.DB, typ, id string, t time.Time, opts *RevertOptions) error {
	return RevertAllAsOf(ctx, db, []Ref{{typ, id}}, t, opts)
}

// RevertAllAsOf reverts every record of refs to its state at moment t, all in
// one transaction: either every record is reverted or none is. Records are
// created and updated in the order of refs and destroyed in reverse order,
// so list parents before their children.
func RevertAllAsOf(ctx context.Context, db *gorm.DB, refs []Ref, t time.Time, opts *RevertOptions) error {
	return revert(ctx, db, refs, point{at: t, byTime: true, version: 0}, revertOptions(opts),
		"revert to "+t.UTC().Format(time.RFC3339Nano))
}

// RevertAllAfterAudit reverts every record of refs to its state right after
// audit row auditID was written (see [StatesAfterAudit]), all in one
// transaction, as [RevertAllAsOf] does for a moment. It is exact even when
// many audit rows share a millisecond.
func RevertAllAfterAudit(ctx context.Context, db *gorm.DB, refs []Ref, auditID int64, opts *RevertOptions) error {
	return revert(ctx, db, refs, point{auditID: auditID, byAudit: true}, revertOptions(opts),
		fmt.Sprintf("revert to audit %d", auditID))
}

// revertStep is one record's rebuilt state and what to write for it.
type revertStep struct {
	h      *history
	target *State
	plan   RecordPlan
}

func revert(ctx context.Context, db *gorm.DB, refs []Ref, pt point, o RevertOptions, comment string) error {
	if o.Comment != "" {
		comment = o.Comment
	}
	if prev, ok := ctx.Value(commentKey).(string); ok && prev != "" {
		comment = prev + " (" + comment + ")"
	}
	wctx := WithComment(ctx, comment)
	run := func(tx *gorm.DB, write bool) (*Plan, error) {
		hs, err := loadHistories(ctx, tx, refs, pt, o.ReadOptions, write)
		if err != nil {
			return nil, err
		}
		steps := make([]*revertStep, 0, len(hs))
		plan := &Plan{}
		for _, h := range hs {
			w := h.walker()
			v, err := h.versionAt()
			if err != nil {
				return nil, err
			}
			if err := w.undoAbove(v); err != nil {
				return nil, err
			}
			target, err := w.state(v)
			if err != nil {
				return nil, err
			}
			s := &revertStep{h: h, target: target}
			if err := s.planned(w); err != nil {
				return nil, err
			}
			if s.plan.Action != "" || len(s.plan.Redacted)+len(s.plan.Skipped) > 0 {
				plan.Records = append(plan.Records, s.plan)
			}
			steps = append(steps, s)
		}
		if !write {
			return plan, nil
		}
		wtx := tx.WithContext(wctx)
		for _, s := range steps {
			if s.plan.Action == ActionCreate || s.plan.Action == ActionUpdate {
				if err := s.write(wtx); err != nil {
					return nil, err
				}
			}
		}
		for i := len(steps) - 1; i >= 0; i-- {
			if s := steps[i]; s.plan.Action == ActionDestroy {
				if err := s.write(wtx); err != nil {
					return nil, err
				}
			}
		}
		return plan, nil
	}

	base := db.Session(&gorm.Session{NewDB: true, Context: ctx})
	var plan *Plan
	var err error
	if o.DryRun {
		plan, err = run(base, false)
	} else {
		err = base.Transaction(func(tx *gorm.DB) error {
			var err error
			plan, err = run(tx, true)
			return err
		})
	}
	if err != nil {
		return err
	}
	if o.Plan != nil {
		*o.Plan = *plan
	}
	return nil
}

// planned decides what to write for one record, comparing the state reverted
// to with the current row.
func (s *revertStep) planned(w *walker) error {
	h, t := s.h, s.target
	m := h.m
	s.plan = RecordPlan{Ref: h.Ref, Version: t.Version, Exists: t.Exists, Skipped: t.Skipped}
	skip := map[string]bool{}
	for _, c := range t.Skipped {
		skip[c] = true
	}
	switch {
	case !t.Exists && !h.curExists:
		return nil
	case !t.Exists:
		if f := m.deletedAtField(); f != nil {
			if v, _ := f.ValueOf(h.ctx, h.cur); v.(gorm.DeletedAt).Valid {
				return nil // already discarded
			}
		}
		s.plan.Action = ActionDestroy
		return nil
	case !h.curExists:
		s.plan.Action = ActionCreate
		s.plan.Changes = Changes{}
		for _, f := range m.fields {
			col := f.DBName
			if m.redact[col] {
				s.plan.Redacted = append(s.plan.Redacted, col)
				continue
			}
			if raw, ok := t.Attributes[col]; ok && !skip[col] {
				s.plan.Changes[col] = pair(json.RawMessage("null"), raw)
			}
		}
		return nil
	}
	changes := Changes{}
	for _, f := range m.fields {
		col := f.DBName
		if m.redact[col] {
			if w.touched[col] {
				s.plan.Redacted = append(s.plan.Redacted, col)
			}
			continue
		}
		raw, ok := t.Attributes[col]
		if !ok || skip[col] {
			continue
		}
		cur, err := encodeField(h.ctx, f, h.cur)
		if err != nil {
			return fmt.Errorf("audit: %s: %w", h.Ref, err)
		}
		if !sameJSON(cur, raw) {
			changes[col] = pair(cur, raw)
		}
	}
	if len(changes) > 0 {
		s.plan.Action, s.plan.Changes = ActionUpdate, changes
	}
	return nil
}

// write applies the planned action through gorm, so that the plugin audits it.
func (s *revertStep) write(tx *gorm.DB) error {
	h := s.h
	m := h.m
	ctx := tx.Statement.Context
	fail := func(err error) error {
		return fmt.Errorf("audit: revert %s to version %d: %w", h.Ref, s.target.Version, err)
	}
	rv := reflect.New(m.schema.ModelType)
	switch s.plan.Action {
	case ActionCreate:
		if err := m.decodeInto(ctx, h.ID, s.target.Attributes, rv.Elem(), skipSet(s.plan.Skipped)); err != nil {
			return fail(err)
		}
		if err := tx.Create(rv.Interface()).Error; err != nil {
			return fail(err)
		}
	case ActionUpdate:
		rv.Elem().Set(h.cur)
		cols := make([]string, 0, len(s.plan.Changes))
		only := make(Changes, len(s.plan.Changes))
		for _, f := range m.fields {
			if _, ok := s.plan.Changes[f.DBName]; ok {
				cols = append(cols, f.DBName)
				only[f.DBName] = s.target.Attributes[f.DBName]
			}
		}
		if err := m.decodeInto(ctx, h.ID, only, rv.Elem(), nil); err != nil {
			return fail(err)
		}
		res := tx.Unscoped().Model(rv.Interface()).Select(cols).Updates(rv.Interface())
		if res.Error != nil {
			return fail(res.Error)
		}
		if res.RowsAffected != 1 {
			return fail(fmt.Errorf("updated %d rows, want 1", res.RowsAffected))
		}
	case ActionDestroy:
		rv.Elem().Set(h.cur)
		res := tx.Delete(rv.Interface())
		if res.Error != nil {
			return fail(res.Error)
		}
		if res.RowsAffected != 1 {
			return fail(fmt.Errorf("deleted %d rows, want 1", res.RowsAffected))
		}
	}
	return nil
}

func skipSet(cols []string) map[string]bool {
	if len(cols) == 0 {
		return nil
	}
	m := make(map[string]bool, len(cols))
	for _, c := range cols {
		m[c] = true
	}
	return m
}
