package difftest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// recKey names one audited record.
type recKey struct{ typ, id string }

func (k recKey) String() string { return k.typ + " " + k.id }

// state is a record's audited columns in canonical form; nil when its row
// does not exist.
type state map[string]string

// auditRow is one stored audit row, read without the audit package's
// decoder so that a row it could not decode is still seen.
type auditRow struct {
	ID        int64
	AccountID int64
	Type, AID string
	AssocType string
	AssocID   string
	Action    string
	Changes   string
	Version   int
}

func (a auditRow) key() recKey { return recKey{a.Type, a.AID} }

func (a auditRow) String() string {
	return fmt.Sprintf("audit #%d %s v%d %s account %d %s", a.ID, a.key(), a.Version, a.Action, a.AccountID, clip(a.Changes, 300))
}

// snapshot is everything the oracle compares: every audited table's rows
// and every audit row, as one connection (or transaction) sees them.
type snapshot struct {
	rows   map[recKey]state
	audits []auditRow // by id
}

// lastVersion returns the highest version among k's audit rows.
func (s *snapshot) lastVersion(k recKey) int {
	v := 0
	for _, a := range s.audits {
		if a.key() == k && a.Version > v {
			v = a.Version
		}
	}
	return v
}

// history returns k's audit rows ordered by version.
func (s *snapshot) history(k recKey) []auditRow {
	var out []auditRow
	for _, a := range s.audits {
		if a.key() == k {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b auditRow) int { return a.Version - b.Version })
	return out
}

// read takes a snapshot through q, a plain statement on the database or on
// the caller's transaction (reads are never audited).
func read(q *gorm.DB) (*snapshot, error) {
	s := &snapshot{rows: map[recKey]state{}}
	for _, t := range tables {
		if err := readTable(q, t, s.rows); err != nil {
			return nil, err
		}
	}
	rows, err := q.Raw(`SELECT id, account_id, auditable_type, auditable_id, associated_type, associated_id, action, audited_changes, version FROM audits ORDER BY id`).Rows()
	if err != nil {
		return nil, fmt.Errorf("read audits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a auditRow
		if err := rows.Scan(&a.ID, &a.AccountID, &a.Type, &a.AID, &a.AssocType, &a.AssocID, &a.Action, &a.Changes, &a.Version); err != nil {
			return nil, fmt.Errorf("scan audits: %w", err)
		}
		s.audits = append(s.audits, a)
	}
	return s, rows.Err()
}

func readTable(q *gorm.DB, t *table, into map[recKey]state) error {
	names := []string{"id"}
	for _, c := range t.cols {
		names = append(names, c.name)
	}
	rows, err := q.Raw(`SELECT ` + strings.Join(quoted(names), ", ") + ` FROM ` + t.name).Rows()
	if err != nil {
		return fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id any
		dests := []any{&id}
		for _, c := range t.cols {
			dests = append(dests, dest(c.kind))
		}
		if err := rows.Scan(dests...); err != nil {
			return fmt.Errorf("scan %s: %w", t.name, err)
		}
		st := state{}
		for i, c := range t.cols {
			st[c.name] = fromDB(c.kind, dests[i+1])
		}
		into[recKey{t.typ, keyText(id)}] = st
	}
	return rows.Err()
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = `"` + n + `"`
	}
	return out
}

// keyText renders a primary key the way auditable_id holds it.
func keyText(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}

// apply replays audit row a on st (nil: the record does not exist) and
// returns the state after it, or why the row cannot follow st.
func apply(t *table, st state, a auditRow) (state, error) {
	var ch map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a.Changes), &ch); err != nil {
		return nil, fmt.Errorf("audited_changes is not a JSON object: %v", err)
	}
	for col := range ch {
		if !slices.ContainsFunc(t.cols, func(c column) bool { return c.name == col }) {
			return nil, fmt.Errorf("audited_changes holds %q, which is not an audited column", col)
		}
	}
	switch a.Action {
	case "create":
		if st != nil {
			return nil, fmt.Errorf("create of a record that exists")
		}
		return full(t, ch)
	case "update":
		return applyUpdate(t, st, ch)
	case "destroy":
		if st == nil {
			return nil, fmt.Errorf("destroy of a record that does not exist")
		}
		snap, err := full(t, ch)
		if err != nil {
			return nil, err
		}
		soft := st["discarded_at"] == null && snap["discarded_at"] != null
		for col, v := range snap {
			if soft && col == "discarded_at" {
				continue
			}
			if st[col] != v {
				return nil, fmt.Errorf("destroy snapshot %s = %s, but the record held %s", col, v, st[col])
			}
		}
		if soft {
			return snap, nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("unknown action %q", a.Action)
}

// full reads a create or destroy row: every audited column, nothing else.
func full(t *table, ch map[string]json.RawMessage) (state, error) {
	st := state{}
	for _, c := range t.cols {
		raw, ok := ch[c.name]
		if !ok {
			return nil, fmt.Errorf("audited column %q is missing", c.name)
		}
		st[c.name] = fromAudit(c.kind, raw)
	}
	return st, nil
}

func applyUpdate(t *table, st state, ch map[string]json.RawMessage) (state, error) {
	if st == nil {
		return nil, fmt.Errorf("update of a record that does not exist")
	}
	if len(ch) == 0 {
		return nil, fmt.Errorf("update row records no column")
	}
	next := maps.Clone(st)
	changed := false
	for _, c := range t.cols {
		raw, ok := ch[c.name]
		if !ok {
			continue
		}
		var pair []json.RawMessage
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("%s is not an [old, new] pair: %s", c.name, clip(string(raw), 200))
		}
		old, nv := fromAudit(c.kind, pair[0]), fromAudit(c.kind, pair[1])
		if old != st[c.name] {
			return nil, fmt.Errorf("old %s = %s, but the record held %s", c.name, clip(old, 200), clip(st[c.name], 200))
		}
		changed = changed || old != nv
		next[c.name] = nv
	}
	if !changed {
		return nil, fmt.Errorf("update row changes nothing")
	}
	return next, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
}
