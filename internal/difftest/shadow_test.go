package difftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestShadowOracleCatchesTampering shows that the shadow oracle can fail:
// after a concurrent run that it accepts, each case tampers with the audit
// log of one racing step by SQL, in a transaction rolled back afterwards,
// and the oracle must name that step.
func TestShadowOracleCatchesTampering(t *testing.T) {
	e := runConcurrent(t)
	s, err := read(e.w())
	require.NoError(t, err)
	require.NoError(t, checkShadow(e.w(), s, e.recorded), "the untampered log")
	cases := []struct {
		name string
		// tamper changes the log of one record and returns its key.
		tamper func(t *testing.T, tx *gorm.DB) recKey
		// replayCatches says whether checkLog alone sees the tampering.
		replayCatches bool
	}{
		{"a missing row", func(t *testing.T, tx *gorm.DB) recKey {
			// B's racing upsert updated the step: drop the row recording it.
			k := raceKey(t, "OnConflict{UpdateAll}")
			i := slices.IndexFunc(s.history(k), func(a auditRow) bool {
				return a.Action == "update" && strings.Contains(a.Changes, `"B OnConflict{UpdateAll}"`)
			})
			require.GreaterOrEqual(t, i, 0, "no row records B's update: %v", s.history(k))
			require.NoError(t, tx.Exec(`DELETE FROM audits WHERE id = ?`, s.history(k)[i].ID).Error)
			return k
		}, true},
		{"a phantom update and its undo", func(t *testing.T, tx *gorm.DB) recKey {
			// Replay cannot see an update the database never made when
			// the next row undoes it; the racing DoNothing's step is the
			// natural place for one, unless a writer has removed it since.
			k := liveStep(t, s, raceKey(t, "OnConflict{DoNothing}"))
			hist := s.history(k)
			var name string
			require.NoError(t, tx.Raw(`SELECT name FROM steps WHERE id = ?`, k.id).Scan(&name).Error)
			for i, pair := range [][2]string{{name, "phantom"}, {"phantom", name}} {
				insertUpdate(t, tx, hist[0], len(hist)+1+i, "name", pair)
			}
			return k
		}, false},
		{"a row filed under another account", func(t *testing.T, tx *gorm.DB) recKey {
			k := raceKey(t, "Save")
			last := s.history(k)[len(s.history(k))-1]
			other := accounts[0] + accounts[1] - last.AccountID
			require.NoError(t, tx.Exec(`UPDATE audits SET account_id = ? WHERE id = ?`, other, last.ID).Error)
			return k
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx := e.w().Begin()
			require.NoError(t, tx.Error)
			defer tx.Rollback()
			k := c.tamper(t, tx)
			tampered, err := read(tx)
			require.NoError(t, err)
			_, replayErr := checkLog(tampered, e.recorded)
			require.Equal(t, c.replayCatches, replayErr != nil, "checkLog: %v", replayErr)
			err = checkShadow(tx, tampered, e.recorded)
			var d *Divergence
			require.True(t, errors.As(err, &d), "the oracle must report the tampering, got %v", err)
			require.Equal(t, "audit rows differ from the committed changes", d.Check)
			require.Contains(t, d.Detail, k.String())
			t.Logf("reported: %v", err)
		})
	}
}

// raceKey returns the key of the step of the racing form named name.
func raceKey(t *testing.T, name string) recKey {
	i := slices.IndexFunc(races, func(r raceForm) bool { return r.name == name })
	require.GreaterOrEqual(t, i, 0, "no race %q", name)
	return recKey{runbooks.TypeStep, raceID(i)}
}

// liveStep returns prefer if its step exists and is not discarded in s,
// else the first such step (prefer may be the zero key).
func liveStep(t *testing.T, s *snapshot, prefer recKey) recKey {
	live := func(k recKey) bool {
		return k.typ == runbooks.TypeStep && s.rows[k] != nil && s.rows[k]["discarded_at"] == null
	}
	if live(prefer) {
		return prefer
	}
	keys := slices.SortedFunc(maps.Keys(s.rows), func(a, b recKey) int { return strings.Compare(a.String(), b.String()) })
	i := slices.IndexFunc(keys, live)
	require.GreaterOrEqual(t, i, 0, "no live step")
	return keys[i]
}

// insertUpdate stores an update row of like's record at version v that
// changes col from pair[0] to pair[1] (string values).
func insertUpdate(t *testing.T, tx *gorm.DB, like auditRow, v int, col string, pair [2]string) {
	raw, err := json.Marshal(pair)
	require.NoError(t, err)
	row := &audit.Audit{AccountID: like.AccountID, AuditableID: like.AID, AuditableType: like.Type,
		AssociatedID: like.AssocID, AssociatedType: like.AssocType, UserID: Actor.ID, UserType: Actor.Type,
		Action: "update", AuditedChanges: audit.Changes{col: raw}, Version: v, CreatedAt: time.Now().UTC(),
		Comment: fmt.Sprintf("difftest: forged v%d", v)}
	require.NoError(t, tx.Create(row).Error)
}

func TestShadowChangeClassification(t *testing.T) {
	for _, c := range []struct {
		name string
		in   shadowChange
		want *change // nil: nothing to record
	}{
		{"insert", shadowChange{Op: "INSERT", Account: 2, Changed: "account_id,name,"}, &change{Action: "create", Account: 2}},
		{"hard delete", shadowChange{Op: "DELETE", Account: 2}, &change{Action: "destroy", Account: 2}},
		{"soft delete", shadowChange{Op: "UPDATE", Account: 1, Discard: true, Changed: "discarded_at,"}, &change{Action: "destroy", Account: 1}},
		{"re-discard with other columns", shadowChange{Op: "UPDATE", Account: 1, Discard: true, Changed: "name,discarded_at,"},
			&change{Action: "update", Columns: []string{"discarded_at", "name"}, Account: 1}},
		{"undiscard", shadowChange{Op: "UPDATE", Account: 1, Changed: "discarded_at,"},
			&change{Action: "update", Columns: []string{"discarded_at"}, Account: 1}},
		{"update", shadowChange{Op: "UPDATE", Account: 3, Changed: "position,name,"},
			&change{Action: "update", Columns: []string{"name", "position"}, Account: 3}},
		{"no audited column", shadowChange{Op: "UPDATE", Account: 3}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.in.asChange()
			require.Equal(t, c.want != nil, ok)
			if c.want != nil {
				got.Ref = ""
				require.Empty(t, cmp.Diff(*c.want, got))
			}
		})
	}
}

// TestShadowOracleInSequentialRuns shows that a sequential run checks the
// shadow log after each unit, reading it incrementally: after units that
// pass, a phantom update and its undo forged into the log fail the next
// check, though replay accepts them.
func TestShadowOracleInSequentialRuns(t *testing.T) {
	e := Open(t, 3, false)
	x := &exec{e: e, stats: Stats{}, checked: map[recKey]int{}, shadow: newShadowLog(e.recorded)}
	seq := Generate(3, 12, Config{Postgres: e.PG, Only: []string{"step.updates_map", "step.delete"}})
	for i, u := range seq {
		require.Nil(t, x.unit(u), "unit %d of\n%s", i+1, seq)
	}
	require.NotZero(t, x.shadow.after, "the units were read from the shadow log")
	s, err := read(e.w())
	require.NoError(t, err)
	k := liveStep(t, s, recKey{})
	hist := s.history(k)
	var name string
	require.NoError(t, e.w().Raw(`SELECT name FROM steps WHERE id = ?`, k.id).Scan(&name).Error)
	for i, pair := range [][2]string{{name, "phantom"}, {"phantom", name}} {
		insertUpdate(t, e.w(), hist[0], len(hist)+1+i, "name", pair)
	}
	tampered, err := read(e.w())
	require.NoError(t, err)
	f := x.settled(tampered, tampered, false)
	require.NotNil(t, f, "the forged rows must be reported")
	var d *Divergence
	require.True(t, errors.As(f.Err, &d), "got %v", f.Err)
	require.Equal(t, "audit rows differ from the committed changes", d.Check)
	require.Contains(t, d.Detail, k.String())
}
