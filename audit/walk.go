package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// walker rebuilds a record's past states by undoing its audit rows, newest
// first, from its current row.
type walker struct {
	h       *history
	ctx     context.Context
	exists  bool
	attrs   Changes
	account int64
	next    int // index of the next row to undo
	removed map[string]bool
	added   map[string]bool
	// touched lists redacted columns whose value at the state differs from
	// (or is not known to equal) the current one.
	touched map[string]bool
	// fromSnapshot is true once the state comes from a destroy's
	// snapshot rather than from the current row.
	fromSnapshot bool
	// since is the created_at of the last row undone: the walked-back
	// state held from then until the next row (forever: up to now).
	since time.Time
}

func (h *history) walker() *walker {
	w := &walker{h: h, ctx: h.ctx, exists: h.curExists, since: forever,
		removed: map[string]bool{}, added: map[string]bool{}, touched: map[string]bool{}}
	if h.curExists {
		w.attrs = make(Changes, len(h.m.fields))
		for _, f := range h.m.fields {
			if h.m.redact[f.DBName] {
				w.attrs[f.DBName] = redacted
				continue
			}
			b, err := encodeField(w.ctx, f, h.cur)
			if err != nil {
				b = json.RawMessage("null")
			}
			w.attrs[f.DBName] = b
		}
		w.account = h.m.accountOf(w.ctx, h.cur)
	} else if len(h.rows) > 0 {
		w.account = h.rows[0].AccountID
	}
	return w
}

// undoAbove undoes every loaded audit row with a version above v.
func (w *walker) undoAbove(v int) error {
	m := w.h.m
	for ; w.next < len(w.h.rows) && w.h.rows[w.next].Version > v; w.next++ {
		a := &w.h.rows[w.next]
		gap := func(reason string) error {
			return &HistoryError{Ref: w.h.Ref, Version: a.Version, Reason: reason}
		}
		if err := w.enter(a); err != nil {
			return err
		}
		switch a.Action {
		case ActionUpdate:
			if !w.exists {
				return gap("an update recorded after the record was removed without a destroy")
			}
			for col := range a.AuditedChanges {
				if !m.audits(col) {
					w.removed[col] = true
					continue
				}
				old, _, ok := a.AuditedChanges.Pair(col)
				if !ok {
					return gap(fmt.Sprintf("column %s is not an [old, new] pair", col))
				}
				if m.redact[col] {
					w.touched[col] = true
					continue
				}
				w.attrs[col] = old
			}
		case ActionDestroy:
			if w.exists {
				// The row outlived its destroy: a soft delete, undone by
				// clearing the deletion column.
				f := m.deletedAtField()
				if f == nil {
					return gap("a destroy recorded while the row still exists, and the model has no soft-delete column")
				}
				w.attrs[f.DBName] = json.RawMessage("null")
				continue
			}
			// A hard delete: its row holds every audited column.
			w.exists, w.fromSnapshot = true, true
			w.attrs = make(Changes, len(m.fields))
			clear(w.added)
			for col := range a.AuditedChanges {
				if !m.audits(col) {
					w.removed[col] = true
				}
			}
			for _, f := range m.fields {
				raw, ok := a.AuditedChanges[f.DBName]
				if !ok {
					w.added[f.DBName] = true
					continue
				}
				if m.redact[f.DBName] {
					w.touched[f.DBName] = true
					raw = redacted
				}
				w.attrs[f.DBName] = raw
			}
			w.account = a.AccountID
		case ActionCreate:
			if !w.exists {
				return gap("a create recorded while the record did not exist afterwards")
			}
			w.exists, w.attrs = false, nil
			// Columns missing before the record existed do not matter.
			clear(w.added)
		default:
			return gap(fmt.Sprintf("unknown action %q", a.Action))
		}
	}
	return nil
}

// enter moves the walk back to the moment of row a, about to be undone. It
// refuses to cross a gap while the record existed: changes made in it are
// in no row undone.
func (w *walker) enter(a *Audit) error {
	if w.exists {
		if g := w.h.gapWithin(a.CreatedAt, w.since); g != nil {
			return &HistoryError{Ref: w.h.Ref, Version: a.Version, Gap: g,
				Reason: "the record may have changed after this version without an audit row"}
		}
	}
	w.since = a.CreatedAt
	return nil
}

// state returns the walked-back state as the state at version v, or a
// *DriftError when columns it needed are not rebuildable.
func (w *walker) state(v int) (*State, error) {
	at := w.h.moment(v)
	// From the point to the last row undone, the record was as rebuilt;
	// a gap there hides changes, and one around the point, if it did not
	// exist, might hide its brief existence.
	g := w.h.gapWithin(at, at)
	if w.exists {
		g = w.h.gapWithin(at, w.since)
	}
	if g != nil {
		return nil, &HistoryError{Ref: w.h.Ref, Version: v, Gap: g,
			Reason: "the record may have changed after this point without an audit row"}
	}
	s := &State{Ref: w.h.Ref, Version: v, Exists: w.exists, AccountID: w.account, m: w.h.m}
	for i := w.next; i < len(w.h.rows); i++ {
		if w.h.rows[i].Version == v {
			s.At = w.h.rows[i].CreatedAt
			break
		}
	}
	if w.exists {
		s.Attributes = maps.Clone(w.attrs)
	}
	removed := slices.Sorted(maps.Keys(w.removed))
	var added []string
	if w.exists {
		added = slices.Sorted(maps.Keys(w.added))
	}
	if len(removed)+len(added) > 0 {
		if !w.h.opts.SkipSchemaDrift {
			return nil, &DriftError{Ref: w.h.Ref, Removed: removed, Added: added}
		}
		s.Skipped = append(removed, added...)
		for _, col := range added {
			delete(s.Attributes, col)
		}
	}
	return s, nil
}

// replay rebuilds the state at version v forward from the record's create,
// over prefix: its audit rows 1..v+1 in order, then its last one (see
// loadPrefix). ok is false when the rows are not what a plain replay
// expects: a column the model no longer audits (in any row read), a model
// column a create lacks, a malformed pair, a destroy it cannot classify.
// The backward walk then decides and reports those.
func (h *history) replay(prefix []Audit, v int) (s *State, ok bool) {
	m := h.m
	for _, a := range []*Audit{&prefix[len(prefix)-1], &prefix[min(v, len(prefix)-1)]} {
		for col := range a.AuditedChanges {
			if !m.audits(col) {
				return nil, false // drift in a later row: walk back to report it
			}
		}
	}
	var attrs Changes
	for i := range v {
		a := &prefix[i]
		switch {
		case a.Action == ActionCreate && attrs == nil:
			if attrs, ok = h.snapshot(a); !ok {
				return nil, false
			}
		case a.Action == ActionUpdate && attrs != nil:
			for col := range a.AuditedChanges {
				_, val, ok := a.AuditedChanges.Pair(col)
				if !ok || !m.audits(col) {
					return nil, false
				}
				if !m.redact[col] {
					attrs[col] = val
				}
			}
		case a.Action == ActionDestroy && attrs != nil && prefix[i+1].Action == ActionCreate:
			attrs = nil // a hard delete: the record is created again later
		case a.Action == ActionDestroy && attrs != nil:
			// The record outlived the destroy: a soft delete, which set
			// its deletion column.
			f := m.deletedAtField()
			if f == nil {
				return nil, false
			}
			val, ok := a.AuditedChanges[f.DBName]
			if !ok {
				return nil, false
			}
			attrs[f.DBName] = val
		default:
			return nil, false
		}
	}
	return &State{Ref: h.Ref, Version: v, At: prefix[v-1].CreatedAt, Exists: attrs != nil,
		AccountID: prefix[0].AccountID, Attributes: attrs, m: m}, true
}

// snapshot returns the audited columns of a create's row, with redacted
// ones as [RedactedValue]; ok is false unless it holds exactly the columns
// the model audits.
func (h *history) snapshot(a *Audit) (Changes, bool) {
	if len(a.AuditedChanges) != len(h.m.fields) {
		return nil, false
	}
	attrs := make(Changes, len(h.m.fields))
	for _, f := range h.m.fields {
		raw, ok := a.AuditedChanges[f.DBName]
		if !ok {
			return nil, false
		}
		if h.m.redact[f.DBName] {
			raw = redacted
		}
		attrs[f.DBName] = raw
	}
	return attrs, true
}
