package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
)

// State is an audited record as it was at one point of its history.
type State struct {
	Ref
	// Version is the record's last audit version at that point; 0 when
	// the point lies before its first recorded version.
	Version int `json:"version"`
	// At is the created_at of that version; zero when Version is 0.
	At time.Time `json:"at"`
	// Exists reports whether the record's row existed. A discarded
	// (soft-deleted) row exists, with its deletion column set.
	Exists bool `json:"exists"`
	// AccountID is the record's account.
	AccountID int64 `json:"account_id"`
	// Attributes holds every audited column with its value, in the
	// audited_changes encoding; nil when the record did not exist.
	// Redacted columns hold [RedactedValue].
	Attributes Changes `json:"attributes"`
	// Skipped lists the columns left out under
	// [ReadOptions].SkipSchemaDrift.
	Skipped []string `json:"skipped,omitempty"`

	m *model
}

// Decode fills dst, a pointer to the record's model (such as
// *runbooks.Step), with the state's primary key and audited columns. Other
// columns, and redacted or skipped ones, are left as they are in dst.
func (s *State) Decode(dst any) error {
	rv := reflect.ValueOf(dst)
	if s.m == nil || rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Type() != s.m.schema.ModelType {
		return fmt.Errorf("audit: decode %s: dst is %T, not a non-nil *%s", s.Ref, dst, typeName(s.m))
	}
	if !s.Exists {
		return fmt.Errorf("audit: decode %s: the record did not exist at version %d: %w", s.Ref, s.Version, ErrNotFound)
	}
	return s.m.decodeInto(context.Background(), s.ID, s.Attributes, rv.Elem(), nil)
}

// StateAt returns record (typ, id) as it was right after its audit version
// version. It works for destroyed records too: a destroy's row holds the
// values it had.
//
// It rebuilds the state one of two ways, whichever reads less. Near the end
// of a history it undoes every later audit from the current row, so that
// history that starts after the record was created (an account enabled
// later) still rebuilds; the cost grows with the number of versions after
// version. Near the start of a history that begins with the record's create
// (at least 8 versions before its end, in the first half) it replays the
// rows 1..version forward from the create and reads of the later rows only
// the newest 8, the last of which must describe the current row as the
// backward walk requires, and (under [ReadOptions].AccountID) their
// accounts; the cost grows with version. Whenever a row read forward is not what a plain
// replay expects (drift, a malformed row), the record's accounts differ, or
// [Config].EnabledAccountsOnly is set (gaps need every row), it walks
// backward instead, so errors are reported exactly as before. The one
// difference: a forward replay does not read, so does not report as
// [DriftError].Removed, a column the model no longer audits that appears
// only in rows strictly between version+1 and the newest 8 (and not in the
// create); such a column is not part of the state either way.
func StateAt(ctx context.Context, db *gorm.DB, typ, id string, version int, opts *ReadOptions) (*State, error) {
	return stateAt(ctx, db, Ref{typ, id}, version, readOptions(opts), true)
}

// stateAt is StateAt; with auto false it always walks backward (tests
// compare both ways).
func stateAt(ctx context.Context, db *gorm.DB, ref Ref, version int, o ReadOptions, auto bool) (*State, error) {
	pt := point{version: version}
	if auto {
		pt.limit = forwardMin // a longer rest is not read: replay forward
	}
	hs, err := loadHistories(ctx, db, []Ref{ref}, pt, o, false)
	if errors.Is(err, errTruncated) {
		if s, err := forward(hs[0], version); s != nil || err != nil {
			return s, err
		}
		pt.limit = 0
		hs, err = loadHistories(ctx, db, []Ref{ref}, pt, o, false)
	}
	if err != nil {
		return nil, err
	}
	w := hs[0].walker()
	if err := w.undoAbove(version); err != nil {
		return nil, err
	}
	return w.state(version)
}

// forward replays h to version v when it can (see history.prefix); nil, nil
// when the backward walk must decide.
func forward(h *history, v int) (*State, error) {
	prefix, ok, err := h.prefix(v, false)
	if err != nil || !ok {
		return nil, err
	}
	s, _ := h.replay(prefix, v)
	return s, nil
}

// StateAsOf returns record (typ, id) as it was at moment t: after its last
// audit created at or before t. For a moment before its recorded history the
// result has Version 0: Exists is false when the history starts with its
// creation, otherwise it is the state the record had when recording began.
func StateAsOf(ctx context.Context, db *gorm.DB, typ, id string, t time.Time, opts *ReadOptions) (*State, error) {
	states, err := StatesAsOf(ctx, db, []Ref{{typ, id}}, t, opts)
	if err != nil {
		return nil, err
	}
	return states[0], nil
}

// StatesAsOf is [StateAsOf] for many records at once, in the order of refs,
// with a constant number of SQL statements per registered type (two, or more
// only beyond 500 records of one type), plus one reading the accounts' gaps
// under [Config].EnabledAccountsOnly.
func StatesAsOf(ctx context.Context, db *gorm.DB, refs []Ref, t time.Time, opts *ReadOptions) ([]*State, error) {
	return statesAt(ctx, db, refs, point{at: t, byTime: true}, readOptions(opts))
}

// StatesAfterAudit returns the records of refs as they were right after
// audit row auditID was written, in the order of refs: each record after its
// last audit row whose id is at most auditID, whatever the record that row
// audits. Ids order a database's audit rows by insertion, so this point is
// exact even when many rows share a millisecond, where [StatesAsOf] cannot
// tell them apart. A record with no row up to auditID has Version 0, as
// with [StatesAsOf]. The statements are those of [StatesAsOf], plus one
// reading the created_at of audit row auditID (or of the last row before
// it), the moment a gap in the history is measured from.
func StatesAfterAudit(ctx context.Context, db *gorm.DB, refs []Ref, auditID int64, opts *ReadOptions) ([]*State, error) {
	return statesAt(ctx, db, refs, point{auditID: auditID, byAudit: true}, readOptions(opts))
}

func statesAt(ctx context.Context, db *gorm.DB, refs []Ref, pt point, o ReadOptions) ([]*State, error) {
	hs, err := loadHistories(ctx, db, refs, pt, o, false)
	if err != nil {
		return nil, err
	}
	out := make([]*State, len(hs))
	for i, h := range hs {
		w := h.walker()
		v, err := h.versionAt()
		if err != nil {
			return nil, err
		}
		if err := w.undoAbove(v); err != nil {
			return nil, err
		}
		if out[i], err = w.state(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Diff returns what changed in record (typ, id) from version from to version
// to: {column: [value at from, value at to]} for each audited column whose
// value differs, in the audited_changes encoding. If the record existed at
// only one of the two versions, every column is listed, null on the other
// side. from may be greater than to.
func Diff(ctx context.Context, db *gorm.DB, typ, id string, from, to int, opts *ReadOptions) (Changes, error) {
	lo, hi := min(from, to), max(from, to)
	hs, err := loadHistories(ctx, db, []Ref{{typ, id}}, point{version: lo}, readOptions(opts), false)
	if err != nil {
		return nil, err
	}
	if err := hs[0].requireVersion(hi); err != nil {
		return nil, err
	}
	w := hs[0].walker()
	if err := w.undoAbove(hi); err != nil {
		return nil, err
	}
	sHi, err := w.state(hi)
	if err != nil {
		return nil, err
	}
	if err := w.undoAbove(lo); err != nil {
		return nil, err
	}
	sLo, err := w.state(lo)
	if err != nil {
		return nil, err
	}
	a, b := sLo, sHi
	if from > to {
		a, b = sHi, sLo
	}
	return diffStates(hs[0].m, a, b), nil
}

// diffStates pairs the audited columns that differ between a and b.
func diffStates(m *model, a, b *State) Changes {
	c := Changes{}
	null := json.RawMessage("null")
	for _, f := range m.fields {
		col := f.DBName
		av, aok := a.Attributes[col]
		bv, bok := b.Attributes[col]
		if !aok && !bok {
			continue
		}
		if !aok {
			av = null
		}
		if !bok {
			bv = null
		}
		if a.Exists == b.Exists && sameJSON(av, bv) {
			continue
		}
		c[col] = pair(av, bv)
	}
	return c
}

func pair(a, b json.RawMessage) json.RawMessage {
	out := make([]byte, 0, len(a)+len(b)+3)
	out = append(append(append(append(append(out, '['), a...), ','), b...), ']')
	return out
}
