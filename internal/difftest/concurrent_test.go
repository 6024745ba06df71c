package difftest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/runbooks"
)

// raceForm is a statement that races a plain Create of the same new key.
type raceForm struct {
	name string
	run  func(db *gorm.DB, s *runbooks.Step) error
}

// races are the racing forms (finding 1). Each must succeed and be
// recorded exactly: an upsert that did nothing with no row, one that
// updated with one update row.
var races = []raceForm{
	{"OnConflict{DoNothing}", func(db *gorm.DB, s *runbooks.Step) error {
		return db.Clauses(clause.OnConflict{DoNothing: true}).Create(s).Error
	}},
	{"OnConflict{UpdateAll}", func(db *gorm.DB, s *runbooks.Step) error {
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(s).Error
	}},
	{"Save", func(db *gorm.DB, s *runbooks.Step) error { return db.Save(s).Error }},
}

// TestDifferentialConcurrent runs writers concurrently (see
// runConcurrent), then checks the whole log (replay = rows, versions 1..n,
// StateAt, the readers) and, record by record, that its audit rows are
// exactly its committed changes as the shadow log tells them: one row per
// change, none for a rolled-back one or a racing upsert that did nothing.
func TestDifferentialConcurrent(t *testing.T) {
	e := runConcurrent(t)
	s, err := read(e.w())
	require.NoError(t, err)
	replayed, err := checkLog(s, e.recorded)
	require.NoError(t, err, "after the concurrent writers")
	require.NoError(t, checkShadow(e.w(), s, e.recorded), "after the concurrent writers")
	require.NoError(t, checkStateAt(e.Ctx, e.DB, replayed, map[recKey]int{}))
	require.NoError(t, checkReaders(t, e))
	t.Logf("%d audit rows, %d records replayed", len(s.audits), len(replayed))
}

// runConcurrent runs writers concurrently on a fresh Env and returns it;
// alongside, for each racing form, transaction A inserts a new step and
// holds its transaction open until B's racing statement on the same key
// is blocked on it (PostgreSQL: seen in pg_locks; SQLite has one writer
// and runs them in turn), then commits.
func runConcurrent(t *testing.T) *Env {
	const seed, writers, unitsEach = 11, 8, 40
	e := Open(t, seed, false)
	// A failed-audit transaction's comment would tag the other writers' rows.
	cfg := Config{Postgres: e.PG, Skip: map[string]bool{"mode:swallow a failed audit": true}}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			x := &exec{e: e, stats: Stats{}, checked: map[recKey]int{}}
			for _, u := range Generate(seed*100+uint64(g), unitsEach, cfg) {
				_ = x.e.w().Transaction(func(tx *gorm.DB) error {
					for _, c := range u.Calls {
						cl := &call{e: e, db: tx, rng: rand.New(rand.NewPCG(c.Seed, 1))}
						if err := opNamed(c.Op).run(cl); err != nil {
							return err
						}
					}
					if u.Mode == Rollback {
						return errRollback
					}
					return nil
				})
			}
		})
	}
	for i, r := range races {
		wg.Go(func() { race(t, e, i, r.name, r.run) })
	}
	wg.Wait()
	return e
}

// race runs one racing pair on a key of its own.
func race(t *testing.T, e *Env, i int, name string, run func(*gorm.DB, *runbooks.Step) error) {
	id := raceID(i)
	acct := accounts[i%2]
	a := &runbooks.Step{ID: id, AccountID: acct, RunbookID: e.runbookOf(acct), Name: "A", Position: 1}
	b := &runbooks.Step{ID: id, AccountID: acct, RunbookID: e.runbookOf(acct), Name: "B " + name, Position: 2}
	bDone := make(chan error, 1)
	err := e.w().Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(a).Error; err != nil {
			return err
		}
		if !e.PG {
			return nil // one writer: B runs after A commits
		}
		go func() { bDone <- run(e.w(), b) }()
		return waitBlocked(e)
	})
	require.NoError(t, err, "A's create (%s)", name)
	if !e.PG {
		bDone <- run(e.w(), b)
	}
	require.NoError(t, <-bDone, "racing %s must be recorded, not refused", name)
}

// raceID is the key of the i-th racing pair's step.
func raceID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1) }

// waitBlocked returns once another backend of this database waits on a
// lock (B blocked on A's uncommitted key), or fails after a deadline.
func waitBlocked(e *Env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int64
		// A fresh connection: the caller's transaction is busy holding.
		if err := e.DB.WithContext(ctx).Raw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%steps%'`).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("difftest: the racing statement never blocked: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
