package difftest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
)

// Divergence is a difference between the database and its audit log: the
// tester's finding.
type Divergence struct {
	// Check names what was violated, such as "unaudited change".
	Check string
	// Detail says how, with the values involved.
	Detail string
}

func (d *Divergence) Error() string { return d.Check + ": " + d.Detail }

func diverge(check, format string, args ...any) error {
	return &Divergence{Check: check, Detail: fmt.Sprintf(format, args...)}
}

// accountOf returns the account a record's state belongs to.
func accountOf(st state) int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(st["account_id"], "i:"), 10, 64)
	return n
}

// recordedFunc reports whether writes of an account are audited.
type recordedFunc func(account int64) bool

// checkStatement compares what one statement did to the database (before →
// after, as its own connection or transaction sees them) with the audit
// rows it added. A statement that returned an error must have changed
// nothing; one that succeeded must have added, for each record whose
// audited columns changed, its next versions replaying before into after,
// and no row for any other record.
func checkStatement(before, after *snapshot, stmtErr error, recorded recordedFunc) error {
	if err := checkAuditsKept(before, after); err != nil {
		return err
	}
	added := after.audits[len(before.audits):]
	if stmtErr != nil {
		if d := cmp.Diff(before.rows, after.rows); d != "" || len(added) > 0 {
			return diverge("refused write changed the database",
				"the statement failed (%v) but changed rows (-before +after):\n%s\nand added %d audit rows %v", stmtErr, d, len(added), added)
		}
		return nil
	}
	byKey := map[recKey][]auditRow{}
	for _, a := range added {
		byKey[a.key()] = append(byKey[a.key()], a)
	}
	keys := map[recKey]bool{}
	for k := range before.rows {
		keys[k] = true
	}
	for k := range after.rows {
		keys[k] = true
	}
	for k := range byKey {
		if !keys[k] {
			return diverge("audit row for no record", "%v: the record exists neither before nor after the statement", byKey[k])
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(keys), func(a, b recKey) int { return strings.Compare(a.String(), b.String()) }) {
		if err := checkRecord(k, before, after, byKey[k], recorded); err != nil {
			return err
		}
	}
	return nil
}

// checkAuditsKept checks that no stored audit row was changed or removed.
func checkAuditsKept(before, after *snapshot) error {
	if len(after.audits) < len(before.audits) {
		return diverge("audit rows removed", "%d audit rows before, %d after", len(before.audits), len(after.audits))
	}
	if d := cmp.Diff(before.audits, after.audits[:len(before.audits)], cmp.AllowUnexported(auditRow{})); d != "" {
		return diverge("audit rows rewritten", "(-before +after):\n%s", d)
	}
	return nil
}

func checkRecord(k recKey, before, after *snapshot, rows []auditRow, recorded recordedFunc) error {
	t := tableOf(k.typ)
	b, a := before.rows[k], after.rows[k]
	changed := cmp.Diff(b, a) != ""
	acctB, acctA := accountOf(b), accountOf(a)
	on := (b != nil && recorded(acctB)) || (a != nil && recorded(acctA))
	switch {
	case !changed && len(rows) > 0:
		return diverge("audit row without a change", "%s did not change, yet got %v", k, rows)
	case changed && !on && len(rows) > 0:
		return diverge("audit of a disabled account", "%s (account %d → %d) got %v", k, acctB, acctA, rows)
	case changed && on && len(rows) == 0:
		return diverge("unaudited change", "%s changed (-before +after):\n%s", k, cmp.Diff(b, a))
	case !changed || !on:
		return nil
	}
	moved := b != nil && a != nil && acctB != acctA
	if len(rows) > 1 && !moved {
		return diverge("several rows for one change", "%s: %v", k, rows)
	}
	prev := before.lastVersion(k)
	st := b
	seen := map[int64]bool{}
	for i, r := range rows {
		if r.Version != prev+1+i {
			return diverge("version gap", "%s: after version %d the statement wrote %v", k, prev+i, r)
		}
		next, err := apply(t, st, r)
		if err != nil {
			return diverge("row does not replay", "%s: %v: %v", k, r, err)
		}
		if err := checkMeta(t, st, firstNonNil(next, st), r); err != nil {
			return err
		}
		seen[r.AccountID] = true
		st = next
	}
	if d := cmp.Diff(a, st); d != "" {
		return diverge("replay differs from the row", "%s: replaying %v on the row before gives (-row +replay):\n%s", k, rows, d)
	}
	if moved && (!seen[acctB] || !seen[acctA]) {
		return diverge("account move seen by one side", "%s moved from account %d to %d; rows: %v", k, acctB, acctA, rows)
	}
	return nil
}

func firstNonNil(a, b state) state {
	if a != nil {
		return a
	}
	return b
}

// checkMeta checks a row's association and account against st, the
// record's state after the row (before it, for a hard delete). A row of an
// update that moves the record may be filed under either account.
func checkMeta(t *table, before, st state, r auditRow) error {
	if t.assocCol == "" {
		if r.AssocType != "" || r.AssocID != "" {
			return diverge("wrong association", "%v names %s %s", r, r.AssocType, r.AssocID)
		}
	} else if want := st[t.assocCol]; r.AssocType != t.assocTyp || "s:"+strconv.Quote(r.AssocID) != want {
		return diverge("wrong association", "%v: want %s %s", r, t.assocTyp, want)
	}
	if r.AccountID != accountOf(st) && (before == nil || r.AccountID != accountOf(before)) {
		return diverge("row filed under the wrong account", "the record is in account %d: %v", accountOf(st), r)
	}
	return nil
}

// checkLog replays every record's whole history forward and compares the
// result with its row: versions 1..n, each row following the state before
// it, the last state equal to the row (or no row after a hard delete), no
// row without history, no history in an account that is not recorded.
// It returns the replayed states by record and version.
func checkLog(s *snapshot, recorded recordedFunc) (map[recKey][]state, error) {
	keys := map[recKey]bool{}
	for k := range s.rows {
		keys[k] = true
	}
	for _, a := range s.audits {
		keys[a.key()] = true
	}
	out := map[recKey][]state{}
	for _, k := range slices.SortedFunc(maps.Keys(keys), func(a, b recKey) int { return strings.Compare(a.String(), b.String()) }) {
		t := tableOf(k.typ)
		if t == nil {
			return nil, diverge("audit row of an unknown type", "%v", s.history(k))
		}
		hist := s.history(k)
		row := s.rows[k]
		if row != nil && !recorded(accountOf(row)) {
			if len(hist) > 0 {
				return nil, diverge("audit of a disabled account", "%s: %v", k, hist)
			}
			continue
		}
		if len(hist) == 0 {
			return nil, diverge("row without history", "%s exists with no audit row: %v", k, row)
		}
		states := []state{nil}
		var st state
		for i, r := range hist {
			if r.Version != i+1 {
				return nil, diverge("versions not 1..n", "%s: version %d at position %d: %v", k, r.Version, i+1, r)
			}
			next, err := apply(t, st, r)
			if err != nil {
				return nil, diverge("history does not replay", "%s: %v: %v", k, r, err)
			}
			if err := checkMeta(t, st, firstNonNil(next, st), r); err != nil {
				return nil, err
			}
			st = next
			states = append(states, st)
		}
		if d := cmp.Diff(row, st); d != "" {
			return nil, diverge("replay differs from the row", "%s: replaying %d rows (-row +replay):\n%s", k, len(hist), d)
		}
		out[k] = states
	}
	return out, nil
}

// checkStateAt compares audit.StateAt at each version from from[k]+1 on
// with the forward replay, and records the versions checked in from.
func checkStateAt(ctx context.Context, db *gorm.DB, replayed map[recKey][]state, from map[recKey]int) error {
	for _, k := range slices.SortedFunc(maps.Keys(replayed), func(a, b recKey) int { return strings.Compare(a.String(), b.String()) }) {
		states := replayed[k]
		t := tableOf(k.typ)
		for v := from[k] + 1; v < len(states); v++ {
			s, err := audit.StateAt(ctx, db, k.typ, k.id, v, nil)
			if err != nil {
				var we *audit.WriteError
				if !strings.HasPrefix(err.Error(), "audit: ") || errors.As(err, &we) {
					return diverge("StateAt fails untyped", "%s v%d: %v", k, v, err)
				}
				return diverge("StateAt refuses a stored version", "%s v%d: %v", k, v, err)
			}
			var got state
			if s.Exists {
				got = state{}
				for _, c := range t.cols {
					raw, ok := s.Attributes[c.name]
					if !ok {
						got[c.name] = "(absent)"
						continue
					}
					got[c.name] = fromAudit(c.kind, raw)
				}
			}
			if d := cmp.Diff(states[v], got); d != "" {
				return diverge("StateAt differs from the replay", "%s v%d (-replay +StateAt):\n%s", k, v, d)
			}
			from[k] = v
		}
	}
	return nil
}
