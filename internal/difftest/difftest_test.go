package difftest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// knownBroken lists the ops that diverge on the current code, each with
// its symptom; they are not drawn unless DIFFTEST_ALL=1. Remove an entry
// once its fix lands (TestDifferentialForms says when one passes).
var knownBroken = map[string]string{
	"mode:swallow a failed audit@sqlite":  "(7) the write stays in the caller's transaction after its audit INSERT fails; swallowing the error commits it unaudited",
	"sample.create_nested":                "(13) nested children refused (ErrUnsupportedWrite: upsert needs every primary key) after the parent row was written; the parent stays in the transaction",
	"sample.create_values":                "(9,12) sub-µs time audited truncated (SQLite); NaN/±Inf refused after the write; a 10,000-deep JSON document stored in audited_changes that encoding/json cannot read",
	"sample.update_values":                "(9,12) as sample.create_values, for updates: refused after the row changed, or truncated values recorded",
	"gauge.create_values":                 "(9,12) as sample.create_values, on the one-statement path on PostgreSQL",
	"gauge.update_values":                 "(9,12) as sample.update_values, on the one-statement path on PostgreSQL",
	"gating.enable_rolled_back":           "(8) EnableAccount in a rolled-back transaction still enables the account in the plugin's cache: its next write is audited",
	"gating.disable_rolled_back":          "(8) DisableAccount in a rolled-back transaction still disables it in the cache: its next write is not audited",
	"step.move_account":                   "(8) a move between accounts is one update row filed under the new account only",
	"step.alias_struct_update":            "(5) an unregistered struct whose TableName is steps updates steps unaudited",
	"step.table_leading_space":            `(5) Table(" steps").Updates(map) is neither refused nor audited`,
	"step.delete_returning_id":            "(3) a delete with a caller's RETURNING id records a destroy of zero values",
	"step.update_returning_id@sqlite":     "(3) an update with a caller's RETURNING id records zero values as the new values",
	"step.table_upper_case@sqlite":        `(5) Table("Steps").Updates(map) is neither refused nor audited`,
	"step.insert_or_replace@sqlite":       "(4) INSERT OR REPLACE over an existing row is recorded as a second create",
	"step.insert_or_ignore@sqlite":        "(4) INSERT OR IGNORE of an existing row writes a create row though nothing changed",
	"step.create_omit@sqlite":             "(2) Omit(...).Create records the omitted columns' struct values, not the NULLs stored",
	"step.update_values":                  "(9) SQLite: an invalid UTF-8 name is audited with U+FFFD; PostgreSQL: a JSON null document over SQL NULL is audited as [null, null]",
	"step.update_primary_key":             "(6) Update(\"id\", newID) moves the row to a new key with no audit row for either key",
	"race.OnConflict{DoNothing}@postgres": "(1) an upsert that did nothing, racing a create of the same key, writes a second create row",
	"race.OnConflict{UpdateAll}@postgres": "(1) racing upsert: not yet confirmed separately (skipped with its sibling; run DIFFTEST_ALL=1)",
	"race.Save@postgres":                  "(1) racing Save: not yet confirmed separately (skipped with its sibling; run DIFFTEST_ALL=1)",
	"race.upserts@postgres":               "(1) concurrent writers: Save / OnConflict creates of a key another transaction is inserting write a second create row",
	"step.table_quoted@postgres":          "(5) Table(`\"steps\"`).Updates(map) is neither refused nor audited",
}

// skipped returns the ops and modes not to draw in this run: the
// knownBroken entries for every database, and those ending in
// "@sqlite" or "@postgres" for that one.
func skipped() map[string]bool {
	out := map[string]bool{}
	if os.Getenv("DIFFTEST_ALL") != "" {
		return out
	}
	for key := range knownBroken {
		name, db, found := strings.Cut(key, "@")
		if !found || db == dbtest.Dialect() {
			out[name] = true
		}
	}
	return out
}

// fixedSeeds are the seeds CI runs; DIFFTEST_SEED runs one other seed.
func fixedSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("DIFFTEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("DIFFTEST_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	return []uint64{1, 2, 3, 4}
}

const unitsPerRun = 40

// check runs seq; on a divergence it shrinks it and fails t with the seed
// and the shortest sequence found.
func check(t *testing.T, r *Runner, seed uint64, seq Sequence) {
	t.Helper()
	f := r.Run(seq)
	if f == nil {
		return
	}
	short, sf := r.Shrink(seq, f, 60)
	t.Fatalf("divergence with seed %d (gated %t, %s); rerun with DIFFTEST_SEED=%d\n"+
		"shortest sequence found (%d of %d units):\n%s\n%v",
		seed, r.Gated, dbtest.Dialect(), seed, len(short), len(seq), short, sf)
}

func TestDifferential(t *testing.T) {
	for _, seed := range fixedSeeds(t) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			gated := seed%2 == 1
			cfg := Config{Postgres: dbtest.Dialect() == dbtest.Postgres, Gated: gated, Skip: skipped()}
			r := &Runner{T: t, Seed: seed, Gated: gated, Readers: true, Stats: Stats{}}
			check(t, r, seed, Generate(seed, unitsPerRun, cfg))
			t.Logf("outcomes by op: %v", r.Stats)
		})
	}
}

// TestDifferentialForms runs each op on its own (with the creates it
// needs), so that every form's status is visible: a known-broken op that
// diverges is logged, one that no longer diverges fails the test until it
// is removed from knownBroken.
func TestDifferentialForms(t *testing.T) {
	pg := dbtest.Dialect() == dbtest.Postgres
	for _, o := range ops {
		if o.only == "postgres" && !pg || o.only == "sqlite" && pg {
			continue
		}
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			skip := skipped()
			broken := skip[o.name]
			cfg := Config{Postgres: pg, Gated: o.gated, Only: []string{o.name}, Skip: skip}
			delete(cfg.Skip, o.name)
			var f *Failure
			var seq Sequence
			r := &Runner{T: t, Seed: 7, Gated: o.gated, Stats: Stats{}}
			for seed := uint64(1); seed <= 3 && f == nil; seed++ {
				seq = Generate(seed, 25, cfg)
				f = r.Run(seq)
			}
			switch {
			case f != nil && broken:
				short, sf := r.Shrink(seq, f, 30)
				t.Logf("known broken: still diverges:\n%s\n%v", short, sf)
			case f != nil:
				short, sf := r.Shrink(seq, f, 30)
				t.Fatalf("diverges:\n%s\n%v", short, sf)
			case broken && os.Getenv("DIFFTEST_ALL") != "":
				t.Fatalf("listed in knownBroken but no longer diverges: remove it")
			}
			t.Logf("outcomes: %v", r.Stats)
		})
	}
}
