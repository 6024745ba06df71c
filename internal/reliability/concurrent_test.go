package reliability

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/uuid"
	"github.com/gormaudit/gormaudit/runbooks"
)

const (
	writers   = 16
	opsEach   = 200
	slotCount = 20
)

var accounts = []int64{101, 102, 103}

// rolledBackPrefix starts every value written in a transaction the test
// rolls back on purpose: no audit row may ever contain it.
const rolledBackPrefix = "rolledback-"

// errRollback is returned by caller transactions that roll back on purpose.
var errRollback = errors.New("deliberate rollback")

// outcomes counts what the writers saw, by kind.
type outcomes struct {
	mu       sync.Mutex
	expected map[string]int64 // committed audited changes per step id
	kinds    map[string]int
	sample   map[string]string // one error message per kind
}

func (o *outcomes) commit(changes map[string]int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, n := range changes {
		o.expected[id] += n
	}
}

func (o *outcomes) count(kind string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kinds[kind]++
	if _, ok := o.sample[kind]; !ok && err != nil {
		o.sample[kind] = err.Error()
	}
}

// classify names an error the writers may legitimately see, or returns ""
// for one that must fail the test.
func classify(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, errRollback):
		return "deliberate rollback"
	case strings.Contains(msg, "40P01"):
		return "deadlock (40P01)"
	case strings.Contains(msg, "40001"):
		return "serialization failure (40001)"
	case strings.Contains(msg, "idx_audits_auditable_version") ||
		strings.Contains(msg, "audits.auditable_type, audits.auditable_id, audits.version"):
		// Only possible under REPEATABLE READ/SERIALIZABLE, whose snapshot
		// can predate a concurrent commit: the unique index refuses the
		// stale version and the write rolls back.
		return staleVersion
	case strings.Contains(msg, "steps_pkey") || strings.Contains(msg, "UNIQUE constraint failed: steps.id"):
		return "create of an existing step refused"
	}
	return ""
}

const staleVersion = "stale version refused by unique index"

// op is one write; it returns the number of audited changes it made to step id.
type op func(tx *gorm.DB, id string) (int64, error)

func TestReliabilityConcurrentWriters(t *testing.T) {
	t.Parallel()
	rep := report(t, "concurrent writers")
	e := setup(t)
	pg := dbtest.Dialect() == dbtest.Postgres

	// Three runbooks and twenty step slots, spread over three accounts.
	runbookOf := map[int64]string{}
	for _, acct := range accounts {
		rb := runbooks.Runbook{AccountID: acct, Name: fmt.Sprintf("runbook of %d", acct)}
		require.NoError(t, e.w().Create(&rb).Error)
		runbookOf[acct] = rb.ID
	}
	ids := make([]string, slotCount)
	accountOf := map[string]int64{}
	for i := range ids {
		ids[i] = uuid.New()
		accountOf[ids[i]] = accounts[i%len(accounts)]
	}
	newStep := func(id, name string, n int) *runbooks.Step {
		acct := accountOf[id]
		return &runbooks.Step{
			ID: id, AccountID: acct, RunbookID: runbookOf[acct], Name: name,
			Config: runbooks.JSON(fmt.Sprintf(`{"made_by": %q, "n": %d}`, name, n)), Position: n,
			DelayDuration: runbooks.Duration(time.Duration(n) * time.Second),
			Rules:         runbooks.JSON(`{"never": "audited"}`), Conditions: runbooks.JSON(`[1, 2]`),
		}
	}
	out := &outcomes{expected: map[string]int64{}, kinds: map[string]int{}, sample: map[string]string{}}
	for i, id := range ids {
		require.NoError(t, e.w().Create(newStep(id, "initial", i)).Error)
		out.expected[id]++
	}

	// Every update changes an audited value, so every affected row is one
	// audit row: names and positions are unique per operation.
	ops := []struct {
		weight int
		name   string
		run    func(tag string, n int) op
	}{
		{30, "update", func(tag string, n int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Model(&runbooks.Step{ID: id}).Updates(map[string]any{
					"name": tag, "position": n, "config": runbooks.JSON(fmt.Sprintf(`{"by": %q}`, tag)),
					"repeats": n%2 == 0, "action_id": tag,
				})
				return res.RowsAffected, res.Error
			}
		}},
		{10, "update expression", func(tag string, n int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Model(&runbooks.Step{ID: id}).Update("position", gorm.Expr("position + 1000000"))
				return res.RowsAffected, res.Error
			}
		}},
		{15, "soft delete", func(string, int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Delete(&runbooks.Step{ID: id})
				return res.RowsAffected, res.Error
			}
		}},
		{15, "undiscard", func(string, int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Unscoped().Model(&runbooks.Step{ID: id}).Where("discarded_at IS NOT NULL").Update("discarded_at", nil)
				return res.RowsAffected, res.Error
			}
		}},
		{10, "hard delete", func(string, int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Unscoped().Delete(&runbooks.Step{ID: id})
				return res.RowsAffected, res.Error
			}
		}},
		{20, "create", func(tag string, n int) op {
			return func(tx *gorm.DB, id string) (int64, error) {
				res := tx.Create(newStep(id, tag, n))
				return res.RowsAffected, res.Error
			}
		}},
	}
	var totalWeight int
	for _, o := range ops {
		totalWeight += o.weight
	}
	pick := func(rng *rand.Rand) (string, func(string, int) op) {
		w := rng.IntN(totalWeight)
		for _, o := range ops {
			if w < o.weight {
				return o.name, o.run
			}
			w -= o.weight
		}
		panic("unreachable")
	}

	const seed = 6
	start := time.Now()
	var wg sync.WaitGroup
	unexpected := make(chan error, writers*opsEach)
	for g := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := 0; i < opsEach; {
				// A quarter of the iterations are caller transactions of
				// two to four writes; half of those roll back on purpose.
				inTx := rng.IntN(4) == 0
				n := 1
				if inTx {
					n = 2 + rng.IntN(3)
				}
				n = min(n, opsEach-i)
				rollback := inTx && rng.IntN(2) == 0
				var opts []*sql.TxOptions
				if pg && inTx && rng.IntN(3) == 0 {
					opts = append(opts, &sql.TxOptions{Isolation: []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable}[rng.IntN(2)]})
				}
				type planned struct {
					id string
					op op
				}
				plan := make([]planned, n)
				for k := range plan {
					tag := fmt.Sprintf("g%02d-i%03d", g, i+k)
					if rollback {
						tag = rolledBackPrefix + tag
					}
					_, run := pick(rng)
					plan[k] = planned{ids[rng.IntN(slotCount)], run(tag, g*1000+i+k)}
				}
				i += n
				changes := map[string]int64{}
				var err error
				if inTx {
					err = e.w().Transaction(func(tx *gorm.DB) error {
						for _, p := range plan {
							affected, err := p.op(tx, p.id)
							if err != nil {
								return err
							}
							changes[p.id] += affected
						}
						if rollback {
							return errRollback
						}
						return nil
					}, opts...)
				} else {
					var affected int64
					affected, err = plan[0].op(e.w(), plan[0].id)
					changes[plan[0].id] += affected
				}
				if err != nil {
					kind := classify(err)
					if kind == staleVersion && len(opts) == 0 {
						kind = "" // READ COMMITTED reads the latest version
					}
					if kind == "" {
						unexpected <- err
						kind = "unexpected"
					}
					out.count(kind, err)
					continue
				}
				out.count("committed", nil)
				out.commit(changes)
			}
		})
	}
	wg.Wait()
	close(unexpected)
	writeTime := time.Since(start)
	for err := range unexpected {
		t.Errorf("unexpected write error: %v", err)
	}
	require.False(t, t.Failed())

	// Every step audit, by record and version.
	var rows []audit.Audit
	require.NoError(t, e.db.Where("auditable_type = ?", runbooks.TypeStep).Order("auditable_id, version").Find(&rows).Error)
	byID := map[string][]audit.Audit{}
	for _, a := range rows {
		byID[a.AuditableID] = append(byID[a.AuditableID], a)
		require.NotContains(t, string(mustJSON(t, a.AuditedChanges)), rolledBackPrefix,
			"audit %d (%s v%d) records a write that was rolled back", a.ID, a.AuditableID, a.Version)
	}
	require.ElementsMatch(t, ids, slices.Collect(maps.Keys(byID)), "audits name exactly the 20 steps")

	var committed int64
	stateChecks := 0
	for _, id := range ids {
		history := byID[id]
		require.Len(t, history, int(out.expected[id]), "step %s: audit rows = committed changes", id)
		committed += out.expected[id]
		for i, a := range history {
			require.Equal(t, i+1, a.Version, "step %s: versions contiguous from 1", id)
			require.Equal(t, accountOf[id], a.AccountID, "step %s v%d: account", id, a.Version)
		}

		// Independent forward replay; states[v] is the state after v.
		states := replay(t, id, history)
		var cur runbooks.Step
		res := e.db.Unscoped().Limit(1).Find(&cur, "id = ?", id)
		require.NoError(t, res.Error)
		last := history[len(history)-1]
		if res.RowsAffected == 0 {
			require.Equal(t, audit.ActionDestroy, last.Action, "step %s is gone, so its last audit is a destroy", id)
			require.Nil(t, states[len(history)], "step %s is gone, so the replay ends with it removed", id)
		} else {
			require.NotNil(t, states[len(history)], "step %s exists, so the replay ends with it present", id)
			var got runbooks.Step
			require.NoError(t, json.Unmarshal(mustJSON(t, states[len(history)]), &got))
			got.ID = id
			if d := cmp.Diff(cur, got, stepCmp...); d != "" {
				t.Fatalf("step %s: replaying %d audits does not give its row (-row +replay):\n%s", id, len(history), d)
			}
		}

		// The library's own backward rebuild agrees with the replay.
		for v := 1; v <= len(history); v++ {
			if v%9 != 1 && v != len(history) {
				continue
			}
			s, err := audit.StateAt(e.ctx, e.db, runbooks.TypeStep, id, v, nil)
			require.NoError(t, err, "StateAt %s v%d", id, v)
			require.Equal(t, states[v] != nil, s.Exists, "StateAt(%s, %d).Exists", id, v)
			if d := cmp.Diff(decodeAll(t, states[v]), decodeAll(t, s.Attributes)); d != "" {
				t.Fatalf("StateAt(%s, %d) differs from the forward replay (-replay +StateAt):\n%s", id, v, d)
			}
			stateChecks++
		}
	}
	var other int64
	require.NoError(t, e.db.Model(&audit.Audit{}).Where("auditable_type <> ?", runbooks.TypeStep).Count(&other).Error)
	require.EqualValues(t, len(accounts), other, "only the three runbook creates besides the steps")

	for kind, msg := range out.sample {
		t.Logf("%s, e.g.: %s", kind, msg)
	}
	kinds := slices.Sorted(maps.Keys(out.kinds))
	var summary []string
	for _, k := range kinds {
		summary = append(summary, fmt.Sprintf("%s %d", k, out.kinds[k]))
	}
	t.Logf("%d writers x %d writes in %s: %s; %d audit rows", writers, opsEach, writeTime.Round(time.Millisecond), strings.Join(summary, ", "), len(rows))
	rep.set(fmt.Sprintf("%d goroutines x %d writes, %d steps, %d accounts; %d audit rows", writers, opsEach, slotCount, len(accounts), len(rows)),
		fmt.Sprintf("versions 1..n contiguous; audit rows = %d committed changes; forward replay = current row (go-cmp); StateAt = replay at %d versions; no rolled-back value audited; outcomes: %s",
			committed, stateChecks, strings.Join(summary, ", ")))
}

// stepCmp compares a step's row with its replayed state: the columns that
// are not audited are ignored, times are compared at the microsecond
// precision audited_changes records (and PostgreSQL keeps), JSON by meaning.
var stepCmp = []cmp.Option{
	cmpopts.IgnoreFields(runbooks.Step{}, "CreatedAt", "UpdatedAt", "Rules", "Conditions"),
	cmp.Transformer("µs", func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }),
	cmp.Transformer("json", func(j runbooks.JSON) any {
		if len(j) == 0 {
			return nil
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			return "invalid JSON: " + string(j)
		}
		return v
	}),
}

// replay rebuilds a record's states forward from its first audit: a create
// sets every column, an update's old values must equal the state so far and
// its new values replace them, and a destroy's snapshot must equal the state
// so far (but for the soft-delete column, which a soft delete sets).
// states[v] is the state right after version v, nil when the record's row
// did not exist then.
func replay(t *testing.T, id string, history []audit.Audit) []audit.Changes {
	t.Helper()
	states := make([]audit.Changes, len(history)+1)
	var state audit.Changes
	for i, a := range history {
		where := fmt.Sprintf("step %s v%d (%s)", id, a.Version, a.Action)
		switch a.Action {
		case audit.ActionCreate:
			require.Nil(t, state, "%s: create of a record that exists", where)
			state = maps.Clone(a.AuditedChanges)
		case audit.ActionUpdate:
			require.NotNil(t, state, "%s: update of a record that does not exist", where)
			for col := range a.AuditedChanges {
				old, new, ok := a.AuditedChanges.Pair(col)
				require.True(t, ok, "%s: %s is not an [old, new] pair", where, col)
				require.Contains(t, state, col, "%s: unknown column %s", where, col)
				require.Equal(t, decode(t, state[col]), decode(t, old), "%s: old %s is not the replayed value", where, col)
				state[col] = new
			}
		case audit.ActionDestroy:
			require.NotNil(t, state, "%s: destroy of a record that does not exist", where)
			require.Equal(t, slices.Sorted(maps.Keys(state)), slices.Sorted(maps.Keys(a.AuditedChanges)), "%s: snapshot columns", where)
			// A soft delete sets discarded_at and keeps the row; any other
			// destroy (of a live or an already discarded row) removes it.
			soft := string(state["discarded_at"]) == "null" && string(a.AuditedChanges["discarded_at"]) != "null"
			for col, v := range a.AuditedChanges {
				if soft && col == "discarded_at" {
					continue
				}
				require.Equal(t, decode(t, state[col]), decode(t, v), "%s: snapshot %s is not the replayed value", where, col)
			}
			state = maps.Clone(a.AuditedChanges)
			if !soft {
				state = nil
			}
		default:
			t.Fatalf("%s: unknown action", where)
		}
		states[i+1] = maps.Clone(state)
	}
	return states
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func decode(t testing.TB, raw json.RawMessage) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v), "%s", raw)
	return v
}

func decodeAll(t testing.TB, c audit.Changes) map[string]any {
	t.Helper()
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = decode(t, v)
	}
	return out
}
