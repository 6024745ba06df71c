package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/gormaudit/gormaudit/internal/auditsql"
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

func typeName(m *model) string {
	if m == nil {
		return "model"
	}
	return m.schema.ModelType.String()
}

// decodeInto sets rv's primary key to id and its audited columns from attrs,
// except redacted columns, columns absent from attrs and those in skip.
func (m *model) decodeInto(ctx context.Context, id string, attrs Changes, rv reflect.Value, skip map[string]bool) error {
	if err := m.setKey(ctx, rv, id); err != nil {
		return err
	}
	for _, f := range m.fields {
		raw, ok := attrs[f.DBName]
		if !ok || m.redact[f.DBName] || skip[f.DBName] {
			continue
		}
		if err := decodeField(ctx, f, rv, raw); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

func (m *model) setKey(ctx context.Context, rv reflect.Value, id string) error {
	v, err := m.keyValue(id)
	if err != nil {
		return err
	}
	if err := m.pk.Set(ctx, rv, v); err != nil {
		return fmt.Errorf("audit: set %s.%s to %q: %w", m.schema.Table, m.pk.DBName, id, err)
	}
	return nil
}

// keyValue turns an auditable_id back into a value of the primary key's kind.
func (m *model) keyValue(id string) (any, error) {
	if isInteger(m.pk.FieldType) {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: %s id %q is not an integer: %w", m.typeName, id, ErrNotFound)
		}
		return n, nil
	}
	return id, nil
}

// StateAt returns record (typ, id) as it was right after its audit version
// version: rebuilt from its current row by undoing every later audit, so
// that history that starts after the record was created (an account enabled
// later) still rebuilds. It works for destroyed records too: a destroy's row
// holds the values it had.
//
// The cost grows with the number of versions after version, not before it:
// recent versions are cheap, the first version of a long history reads it
// all. Replaying forward from a create instead would be cheaper there, but
// would neither serve histories that start late nor see schema drift in the
// later rows a revert has to undo, so both are reported the same way
// whatever the version.
func StateAt(ctx context.Context, db *gorm.DB, typ, id string, version int, opts *ReadOptions) (*State, error) {
	hs, err := loadHistories(ctx, db, []Ref{{typ, id}}, point{version: version}, readOptions(opts), false)
	if err != nil {
		return nil, err
	}
	w := hs[0].walker()
	if err := w.undoAbove(version); err != nil {
		return nil, err
	}
	return w.state(version)
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
		v := h.versionAt()
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

// point is where in a history a call looks: a version, a moment, or right
// after an audit row.
type point struct {
	version int
	at      time.Time // byTime: the moment; byAudit: the audit row's created_at
	byTime  bool
	auditID int64
	byAudit bool
}

// moment is the time the point stands for, from which a gap in the history
// matters; for a version, the created_at of that version's row.
func (h *history) moment(v int) time.Time {
	if h.pt.byTime || h.pt.byAudit {
		return h.pt.at
	}
	for _, a := range h.rows {
		if a.Version == v {
			return a.CreatedAt
		}
	}
	return time.Time{}
}

// history is what a rebuild of one record needs: its current row and its
// audit rows from the point on, newest first.
type history struct {
	Ref
	ctx        context.Context
	q          *gorm.DB // the session the history was read through
	m          *model
	pt         point
	cur        reflect.Value // valid when curExists
	curExists  bool
	rows       []Audit // version descending
	opts       ReadOptions
	first      int // 0 unless known
	last       int
	boundsRead bool
	// gaps are the periods the record's accounts were not recorded, under
	// Config.EnabledAccountsOnly.
	gaps []AccountGap
}

// versionAt is the version current at the history's point: for a moment, the
// oldest loaded row is the last one created at or before it, if any.
func (h *history) versionAt() int {
	n := len(h.rows)
	switch {
	case h.pt.byTime:
		if n > 0 && !h.rows[n-1].CreatedAt.After(h.pt.at) {
			return h.rows[n-1].Version
		}
		return 0
	case h.pt.byAudit:
		if n > 0 && h.rows[n-1].ID <= h.pt.auditID {
			return h.rows[n-1].Version
		}
		return 0
	}
	return h.pt.version
}

// loadHistories reads the current rows and the audit rows of refs from the
// point on, with one statement for the rows and one for the audits per type
// (per 500 records). With lock, the current rows are locked (PostgreSQL) so
// that nobody writes them, or their history, until the transaction ends.
func loadHistories(ctx context.Context, db *gorm.DB, refs []Ref, pt point, o ReadOptions, lock bool) ([]*history, error) {
	p, ok := FromDB(db)
	if !ok {
		return nil, ErrNoPlugin
	}
	q := db.Session(&gorm.Session{NewDB: true, Context: ctx})
	if pt.byAudit {
		// The moment of the point: gaps that end before it do not matter.
		at, ok, err := auditsql.CreatedAtUpTo(q, pt.auditID)
		if err != nil {
			return nil, fmt.Errorf("audit: read audit row %d: %w", pt.auditID, err)
		}
		if ok {
			pt.at = at
		}
	}
	hs := make([]*history, len(refs))
	byType := map[string][]*history{}
	var types []string
	for i, r := range refs {
		m, ok := p.byType[r.Type]
		if !ok {
			return nil, &NotFoundError{Ref: r, UnknownType: true}
		}
		if _, err := m.keyValue(r.ID); err != nil {
			return nil, &NotFoundError{Ref: r}
		}
		hs[i] = &history{Ref: r, ctx: ctx, q: q, m: m, pt: pt, opts: o}
		if _, seen := byType[r.Type]; !seen {
			types = append(types, r.Type)
		}
		byType[r.Type] = append(byType[r.Type], hs[i])
	}
	for _, typ := range types {
		group := byType[typ]
		for start := 0; start < len(group); start += loadBatch {
			if err := p.loadBatch(q, group[start:min(start+loadBatch, len(group))], lock); err != nil {
				return nil, err
			}
		}
	}
	if p.cfg.EnabledAccountsOnly {
		if err := loadGaps(q, hs); err != nil {
			return nil, err
		}
	}
	for _, h := range hs {
		if err := h.check(q); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// loadBatch bounds the records of one IN list.
const loadBatch = 500

func (p *Plugin) loadBatch(q *gorm.DB, group []*history, lock bool) error {
	m := group[0].m
	ctx := q.Statement.Context
	byID := make(map[string][]*history, len(group))
	keys := make([]any, 0, len(group))
	ids := make([]string, 0, len(group))
	for _, h := range group {
		if _, dup := byID[h.ID]; !dup {
			v, _ := m.keyValue(h.ID)
			keys = append(keys, v)
			ids = append(ids, h.ID)
		}
		byID[h.ID] = append(byID[h.ID], h)
	}

	rq := q.Table(m.schema.Table).Where(clause.IN{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}, Values: keys})
	if lock {
		rq = p.dialect.ForUpdate(rq)
	}
	rows, err := rq.Rows()
	if err != nil {
		return fmt.Errorf("audit: read %s rows: %w", m.schema.Table, err)
	}
	recs, err := scanRecords(ctx, rows, m.schema)
	if err != nil {
		return fmt.Errorf("audit: read %s rows: %w", m.schema.Table, err)
	}
	for _, rv := range recs {
		for _, h := range byID[key(ctx, m.pk, rv)] {
			h.cur, h.curExists = rv, true
		}
	}

	audits, err := readAudits(q, m.typeName, ids, group[0].pt)
	if err != nil {
		return fmt.Errorf("audit: read history of %s: %w", m.typeName, err)
	}
	for _, a := range audits {
		for _, h := range byID[a.AuditableID] {
			h.rows = append(h.rows, a)
		}
	}
	return nil
}

// readAudits reads the audit rows of the records of type typ with the given
// ids from point pt on (and the last one before it), newest first per record.
func readAudits(q *gorm.DB, typ string, ids []string, pt point) ([]Audit, error) {
	since := auditsql.SinceVersion(pt.version)
	switch {
	case pt.byTime:
		since = auditsql.SinceTime(pt.at)
	case pt.byAudit:
		since = auditsql.SinceAudit(pt.auditID)
	}
	entries, err := auditsql.History(q, typ, ids, since)
	if err != nil {
		return nil, err
	}
	out := make([]Audit, len(entries))
	for i, e := range entries {
		out[i] = Audit{ID: e.ID, AuditableID: e.AuditableID, Version: e.Version, Action: Action(e.Action),
			CreatedAt: e.CreatedAt, AccountID: e.AccountID}
		if err := out[i].AuditedChanges.Scan(e.Changes); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// check refuses records that do not exist or belong to another account, and
// versions outside the history, before anything is rebuilt.
func (h *history) check(q *gorm.DB) error {
	if want := h.opts.AccountID; want != nil {
		if h.curExists {
			if got := h.m.accountOf(h.ctx, h.cur); got != *want {
				return &AccountError{Ref: h.Ref, AccountID: got, Want: *want}
			}
		}
		for _, a := range h.rows {
			if a.AccountID != *want {
				return &AccountError{Ref: h.Ref, AccountID: a.AccountID, Want: *want}
			}
		}
	}
	if !h.curExists && len(h.rows) == 0 {
		first, last, err := h.bounds(q)
		if err != nil {
			return err
		}
		if last == 0 {
			return &NotFoundError{Ref: h.Ref}
		}
		if !h.pt.byTime && !h.pt.byAudit {
			return &VersionError{Ref: h.Ref, Version: h.pt.version, First: first, Last: last}
		}
	}
	if !h.pt.byTime && !h.pt.byAudit {
		n := len(h.rows)
		if h.pt.version < 1 || n == 0 || h.rows[n-1].Version != h.pt.version {
			first, last, err := h.bounds(q)
			if err != nil {
				return err
			}
			return &VersionError{Ref: h.Ref, Version: h.pt.version, First: first, Last: last}
		}
	}
	return h.checkCurrent()
}

// accounts lists the accounts of the record's current row and audit rows.
func (h *history) accounts() []int64 {
	var out []int64
	if h.curExists {
		out = append(out, h.m.accountOf(h.ctx, h.cur))
	}
	for _, a := range h.rows {
		if !slices.Contains(out, a.AccountID) {
			out = append(out, a.AccountID)
		}
	}
	return out
}

// checkCurrent refuses a history whose last audit row does not describe the
// current row: a change was made without an audit row (while the account
// was not recorded, or by raw SQL), so no earlier state can be rebuilt.
func (h *history) checkCurrent() error {
	if len(h.rows) == 0 {
		return nil
	}
	last := &h.rows[0]
	gap := func(reason string) error {
		return &HistoryError{Ref: h.Ref, Version: last.Version,
			Reason: "the current row is not what the last audit row left: " + reason}
	}
	switch {
	case last.Action == ActionDestroy && !h.curExists:
		return nil
	case !h.curExists:
		return gap("the row is gone without a destroy")
	case last.Action == ActionDestroy:
		f := h.m.deletedAtField()
		if f == nil {
			return gap("the row exists after its destroy")
		}
		if v, _ := f.ValueOf(h.ctx, h.cur); !v.(gorm.DeletedAt).Valid {
			return gap("the row is no longer discarded after its destroy")
		}
		return nil
	}
	for _, f := range h.m.fields {
		col := f.DBName
		raw, ok := last.AuditedChanges[col]
		if !ok || h.m.redact[col] {
			continue
		}
		if last.Action == ActionUpdate {
			if _, raw, ok = last.AuditedChanges.Pair(col); !ok {
				continue // undoAbove names the malformed row
			}
		}
		cur, err := encodeField(h.ctx, f, h.cur)
		if err != nil {
			return fmt.Errorf("audit: %s: %w", h.Ref, err)
		}
		if !sameJSON(cur, raw) {
			return gap(fmt.Sprintf("%s is %s, not %s", col, cur, raw))
		}
	}
	return nil
}

// requireVersion returns a *VersionError unless version v was loaded.
func (h *history) requireVersion(v int) error {
	for _, a := range h.rows {
		if a.Version == v {
			return nil
		}
	}
	first, last, err := h.bounds(h.q)
	if err != nil {
		return err
	}
	return &VersionError{Ref: h.Ref, Version: v, First: first, Last: last}
}

// bounds reads the first and last recorded versions; only errors need them.
func (h *history) bounds(q *gorm.DB) (first, last int, err error) {
	if h.boundsRead {
		return h.first, h.last, nil
	}
	first, last, err = auditsql.Bounds(q, h.Type, h.ID)
	if err != nil {
		return 0, 0, fmt.Errorf("audit: read history of %s: %w", h.Ref, err)
	}
	h.first, h.last, h.boundsRead = first, last, true
	if h.opts.AccountID != nil && last > 0 && !h.curExists {
		// Do not tell another account's caller which versions exist.
		acct, err := auditsql.LatestAccount(q, h.Type, h.ID)
		if err != nil {
			return 0, 0, fmt.Errorf("audit: read history of %s: %w", h.Ref, err)
		}
		if acct != *h.opts.AccountID {
			return 0, 0, &AccountError{Ref: h.Ref, AccountID: acct, Want: *h.opts.AccountID}
		}
	}
	return first, last, nil
}

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

// deletedAtField returns the model's audited soft-delete column, if any.
func (m *model) deletedAtField() *schema.Field {
	for _, f := range m.fields {
		if f.FieldType == reflect.TypeFor[gorm.DeletedAt]() {
			return f
		}
	}
	return nil
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

// audits reports whether col is one of the model's audited columns.
func (m *model) audits(col string) bool {
	return slices.ContainsFunc(m.fields, func(f *schema.Field) bool { return f.DBName == col })
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
