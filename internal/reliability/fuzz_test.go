package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// FuzzChangesScan decodes arbitrary stored audited_changes. Scan must
// accept or refuse them cleanly; what it accepts must encode again, and the
// encoding must be a fixed point of decode-then-encode, so a stored row
// never changes meaning when it is read and written back.
func FuzzChangesScan(f *testing.F) {
	rep := report(f, "fuzz: decode stored audited_changes")
	var inputs, accepted atomic.Int64
	f.Cleanup(func() {
		rep.set(fmt.Sprintf("%d inputs (%d decoded)", inputs.Load(), accepted.Load()),
			"Changes.Scan of arbitrary bytes and text: no panic, errors prefixed \"audit:\", Value round trip is a fixed point, Pair never panics")
	})
	// The seed corpus is testdata/fuzz/FuzzChangesScan.
	f.Fuzz(func(t *testing.T, data []byte) {
		inputs.Add(1)
		for _, src := range []any{data, string(data)} {
			var c audit.Changes
			if err := c.Scan(src); err != nil {
				require.True(t, strings.HasPrefix(err.Error(), "audit: "), "unprefixed error: %v", err)
				continue
			}
			accepted.Add(1)
			for col := range c {
				c.Pair(col)
			}
			v1, err := c.Value()
			require.NoError(t, err, "decoded changes must encode again")
			var again audit.Changes
			require.NoError(t, again.Scan(v1), "the encoding must decode")
			v2, err := again.Value()
			require.NoError(t, err)
			require.Equal(t, v1, v2, "decode then encode must be a fixed point")
		}
	})
}

// fuzzActions maps the first letter of a fuzzed line to the action it
// records; any other letter is stored as written, an unknown action.
var fuzzActions = map[byte]string{'c': "create", 'u': "update", 'd': "destroy"}

// maxFuzzedAudits bounds a fuzzed sequence: every version is rebuilt,
// each rebuild reads the rows above it, and longer sequences find nothing
// shorter ones do not, only slower.
const maxFuzzedAudits = 16

// parseAudits reads a fuzzed audit sequence: one row per line,
// "<action letter> <version> <audited_changes>", at most maxFuzzedAudits.
func parseAudits(script string) []audit.Audit {
	var out []audit.Audit
	for i, line := range strings.Split(script, "\n") {
		if len(out) == maxFuzzedAudits {
			break
		}
		if line == "" {
			continue
		}
		action, rest, _ := strings.Cut(line, " ")
		vs, changes, _ := strings.Cut(rest, " ")
		v, err := strconv.Atoi(vs)
		if err != nil {
			v = i + 1
		}
		a := action
		if action != "" {
			if full, ok := fuzzActions[action[0]]; ok && len(action) == 1 {
				a = full
			}
		}
		out = append(out, audit.Audit{Action: audit.Action(a), Version: v, AuditedChanges: nil, Comment: changes})
	}
	return out
}

// FuzzStateFromAudits stores an arbitrary audit sequence for one step, with
// or without a current row, and rebuilds every version of it with StateAt
// and Diff: they must return a state or a clean error, never panic, and a
// state that says the record existed must decode into a Step or refuse to.
func FuzzStateFromAudits(f *testing.F) {
	rep := report(f, "fuzz: rebuild state from arbitrary audit sequences")
	e := setup(f)
	require.NoError(f, e.w().Create(&runbooks.Runbook{ID: "r", AccountID: 7, Name: "fuzzed"}).Error)
	const id = "0b8f1a52-3c7e-4f7b-9d5e-2a1c6e4b8f00"
	ctx := context.Background()
	var inputs, stored, states, errs atomic.Int64
	f.Cleanup(func() {
		rep.set(fmt.Sprintf("%d sequences (%d stored), %d states rebuilt, %d clean errors", inputs.Load(), stored.Load(), states.Load(), errs.Load()),
			"StateAt at every version and at 0, -1, last+1; Diff(first, last) and of neighbours; State.Decode into a Step: no panic, errors prefixed \"audit:\"")
	})
	// The seed corpus is testdata/fuzz/FuzzStateFromAudits: real sequences
	// (create, updates, soft and hard deletes, late starts) and broken ones.
	f.Fuzz(func(t *testing.T, script string, rowExists bool, rowName string) {
		inputs.Add(1)
		db := e.db.WithContext(ctx)
		require.NoError(t, db.Exec(`DELETE FROM audits`).Error)
		require.NoError(t, db.Exec(`DELETE FROM steps`).Error)
		if rowExists {
			// Written without the plugin's callbacks: the row is whatever
			// the fuzzer says, not the result of the audits.
			if err := db.Exec(`INSERT INTO steps (id, account_id, runbook_id, name, repeats, position, automatic, delay_duration, created_at, updated_at)
				VALUES (?, 7, 'r', ?, false, 1, false, 'PT0S', ?, ?)`, id, rowName, time.Now(), time.Now()).Error; err != nil {
				t.Skipf("row not storable: %v", err) // PostgreSQL refuses NUL bytes and invalid UTF-8
			}
		}
		rows := parseAudits(script)
		versions := map[int]bool{}
		for _, a := range rows {
			// Arbitrary text in audited_changes, as a damaged or foreign
			// row could hold (PostgreSQL's jsonb refuses what is not JSON).
			err := db.Exec(`INSERT INTO audits (account_id, auditable_id, auditable_type, action, audited_changes, version, created_at)
				VALUES (7, ?, ?, ?, ?, ?, ?)`, id, runbooks.TypeStep, string(a.Action), a.Comment, a.Version, time.Now().UTC()).Error
			if err != nil {
				t.Skipf("sequence not storable: %v", err)
			}
			versions[a.Version] = true
		}
		stored.Add(1)
		clean := func(err error, what string) {
			if err != nil {
				errs.Add(1)
				require.True(t, strings.HasPrefix(err.Error(), "audit: "), "%s: unprefixed error: %v", what, err)
			}
		}
		first, last := 0, 0
		for v := range versions {
			if first == 0 || v < first {
				first = v
			}
			last = max(last, v)
		}
		try := []int{0, -1, last + 1}
		for v := range versions {
			try = append(try, v)
		}
		for _, v := range try {
			s, err := audit.StateAt(ctx, e.db, runbooks.TypeStep, id, v, nil)
			clean(err, fmt.Sprintf("StateAt(%d)", v))
			if err != nil {
				continue
			}
			states.Add(1)
			if s.Exists {
				var step runbooks.Step
				clean(s.Decode(&step), fmt.Sprintf("Decode at %d", v))
				_, err := json.Marshal(s)
				require.NoError(t, err)
			}
			_, err = audit.Diff(ctx, e.db, runbooks.TypeStep, id, v, v+1, nil)
			clean(err, fmt.Sprintf("Diff(%d, %d)", v, v+1))
		}
		c, err := audit.Diff(ctx, e.db, runbooks.TypeStep, id, first, last, nil)
		clean(err, "Diff(first, last)")
		if err == nil {
			_, err := c.Value()
			require.NoError(t, err)
		}
		_, err = audit.StateAsOf(ctx, e.db, runbooks.TypeStep, id, time.Now(), nil)
		clean(err, "StateAsOf(now)")
	})
}
