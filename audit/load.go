package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

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
	// horizon is how far the record's account was pruned, when read
	// (horizonRead): nil when it never was.
	horizon     *Horizon
	horizonRead bool
}

// versionAt is the version current at the history's point: for a moment, the
// oldest loaded row is the last one created at or before it, if any; if
// none is, see beforeRows.
func (h *history) versionAt() (int, error) {
	n := len(h.rows)
	switch {
	case h.pt.byTime:
		if n > 0 && !h.rows[n-1].CreatedAt.After(h.pt.at) {
			return h.rows[n-1].Version, nil
		}
		return h.beforeRows()
	case h.pt.byAudit:
		if n > 0 && h.rows[n-1].ID <= h.pt.auditID {
			return h.rows[n-1].Version, nil
		}
		return h.beforeRows()
	}
	return h.pt.version, nil
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
	if p.cfg.EnabledAccountsOnly || len(refs) != 1 {
		pt.limit = 0 // gaps need every row's account and moment
	}
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
	if h := hs[0]; pt.limit > 0 && len(h.rows) == pt.limit && h.rows[pt.limit-1].Version > pt.version {
		return hs, errTruncated
	}
	if p.cfg.EnabledAccountsOnly {
		if err := loadGaps(q, hs); err != nil {
			return nil, err
		}
	}
	if err := loadHorizons(q, hs); err != nil {
		return nil, err
	}
	for _, h := range hs {
		if err := h.check(q); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// errTruncated reports a history cut short by point.limit: more than limit
// rows follow the point. It never leaves the package.
var errTruncated = errors.New("audit: history read truncated")

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

	recs, err := p.readRecords(q, m, keys, lock)
	if err != nil {
		return err
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

// readRecords reads the current rows of model m with the given primary
// keys; with lock, locked (PostgreSQL) until the transaction ends.
func (p *Plugin) readRecords(q *gorm.DB, m *model, keys []any, lock bool) ([]reflect.Value, error) {
	rq := q.Table(m.schema.Table).Where(clause.IN{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}, Values: keys})
	if lock {
		rq = p.dialect.ForUpdate(rq)
	}
	rows, err := rq.Rows()
	if err != nil {
		return nil, fmt.Errorf("audit: read %s rows: %w", m.schema.Table, err)
	}
	recs, err := scanRecords(q.Statement.Context, rows, m.schema)
	if err != nil {
		return nil, fmt.Errorf("audit: read %s rows: %w", m.schema.Table, err)
	}
	return recs, nil
}

// readAudits reads the audit rows of the records of type typ with the given
// ids from point pt on (and the last one before it), newest first per record.
func readAudits(q *gorm.DB, typ string, ids []string, pt point) ([]Audit, error) {
	since := auditsql.SinceVersion(pt.version).Limit(pt.limit)
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
	return auditsOf(entries)
}

// auditsOf converts the entries read by auditsql into audit rows.
func auditsOf(entries []auditsql.Entry) ([]Audit, error) {
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
		_, last, err := h.bounds(q)
		if err != nil {
			return err
		}
		if last == 0 {
			return &NotFoundError{Ref: h.Ref}
		}
		if !h.pt.byTime && !h.pt.byAudit {
			return h.missingVersion(h.pt.version)
		}
	}
	if !h.pt.byTime && !h.pt.byAudit {
		n := len(h.rows)
		if h.pt.version < 1 || n == 0 || h.rows[n-1].Version != h.pt.version {
			return h.missingVersion(h.pt.version)
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

// requireVersion returns a *VersionError (or, for a pruned version, a
// *HistoryError) unless version v was loaded.
func (h *history) requireVersion(v int) error {
	for _, a := range h.rows {
		if a.Version == v {
			return nil
		}
	}
	return h.missingVersion(v)
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

// point is where in a history a call looks: a version, a moment, or right
// after an audit row.
type point struct {
	version int
	// limit, for one record's version, reads at most its newest limit
	// rows: loadHistories then returns errTruncated if they do not reach
	// back to version.
	limit   int
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

// forwardMin is the fewest versions after the requested one for which
// StateAt replays forward from the create rather than walking backward. It
// first reads at most this many of the newest rows, as the backward walk
// would: reading on costs ~5 µs a row on SQLite, so a small limit keeps
// the forward case cheap, and a history that ends within it is walked back
// with the statements StateAt always used.
const forwardMin = 8

// loadPrefix reads what a forward replay of record ref to version v needs
// (see history.prefix), when nothing is known of it yet: its last audit row
// and its current row first.
func loadPrefix(ctx context.Context, db *gorm.DB, ref Ref, v int, o ReadOptions, force bool) (h *history, prefix []Audit, ok bool, err error) {
	p, ok := FromDB(db)
	if !ok || p.cfg.EnabledAccountsOnly {
		return nil, nil, false, nil // gaps need every row's account and moment
	}
	m, ok := p.byType[ref.Type]
	if !ok {
		return nil, nil, false, nil
	}
	pk, err := m.keyValue(ref.ID)
	if err != nil {
		return nil, nil, false, nil
	}
	q := db.Session(&gorm.Session{NewDB: true, Context: ctx})
	entries, err := auditsql.Last(q, ref.Type, ref.ID)
	if err != nil || len(entries) == 0 {
		return nil, nil, false, readError(ref, err)
	}
	lastRow, err := auditsOf(entries)
	if err != nil {
		return nil, nil, false, readError(ref, err)
	}
	recs, err := p.readRecords(q, m, []any{pk}, false)
	if err != nil {
		return nil, nil, false, err
	}
	h = &history{Ref: ref, ctx: ctx, q: q, m: m, pt: point{version: v}, opts: o, rows: lastRow}
	if len(recs) > 0 {
		h.cur, h.curExists = recs[0], true
	}
	prefix, ok, err = h.prefix(v, force)
	return h, prefix, ok, err
}

// prefix reads the audit rows 1..v+1 that a forward replay to version v
// needs, given the history's current row and its newest audit rows (the
// last one at least), which are checked as the backward walk checks them:
// the current row against the last, no column the model no longer audits.
// It reads neither the
// audited_changes nor anything else of the rows in between, except their
// accounts under [ReadOptions].AccountID. The returned rows end with the
// last one. ok is false when a forward replay is not chosen (v is nearer
// the end or, unless force, fewer than forwardMin versions before it) or
// not provable from these rows; the caller then walks backward, which
// decides and reports exactly as before. h.rows is left with the last row
// only.
func (h *history) prefix(v int, force bool) (prefix []Audit, ok bool, err error) {
	for _, a := range h.rows {
		for col := range a.AuditedChanges {
			if !h.m.audits(col) {
				return nil, false, nil // drift in a row read: walk back to report it
			}
		}
	}
	h.rows = h.rows[:1]
	last := h.rows[0].Version
	if v < 1 || v >= last || (!force && (last-v < forwardMin || v > last/2)) {
		return nil, false, nil
	}
	entries, err := auditsql.UpTo(h.q, h.Type, h.ID, min(v+1, last-1))
	if err != nil {
		return nil, false, readError(h.Ref, err)
	}
	if prefix, err = auditsOf(entries); err != nil {
		return nil, false, readError(h.Ref, err)
	}
	prefix = append(prefix, h.rows[0])
	if !contiguous(prefix, v, last) || h.checkCurrent() != nil {
		return nil, false, nil
	}
	if ok, err := h.oneAccount(prefix, v); !ok || err != nil {
		return nil, false, err
	}
	return prefix, true, nil
}

// readError wraps an error reading the history of ref; nil stays nil.
func readError(ref Ref, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("audit: read history of %s: %w", ref, err)
}

// contiguous reports whether prefix holds versions 1..v+1 in order and then
// version last.
func contiguous(prefix []Audit, v, last int) bool {
	if len(prefix) != min(v+2, last) || prefix[len(prefix)-1].Version != last {
		return false
	}
	for i := range min(v+1, len(prefix)) {
		if prefix[i].Version != i+1 {
			return false
		}
	}
	return true
}

// oneAccount reports whether the current row and the audit rows of prefix
// share one account and, under [ReadOptions].AccountID, whether it and the
// account of every row after version v is the caller's.
func (h *history) oneAccount(prefix []Audit, v int) (bool, error) {
	acct := prefix[0].AccountID
	if h.curExists && h.m.accountOf(h.ctx, h.cur) != acct {
		return false, nil
	}
	for _, a := range prefix {
		if a.AccountID != acct {
			return false, nil
		}
	}
	want := h.opts.AccountID
	if want == nil {
		return true, nil
	}
	if acct != *want {
		return false, nil
	}
	other, err := auditsql.OtherAccount(h.q, h.Type, h.ID, v, *want)
	if err != nil {
		return false, fmt.Errorf("audit: read history of %s: %w", h.Ref, err)
	}
	return !other, nil
}
