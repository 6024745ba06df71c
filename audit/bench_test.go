package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// BenchmarkWriteCycle compares plain gorm with audited gorm, side by side in
// one run: each iteration creates a step, updates two of its columns and
// deletes it, each write in its own transaction, first on a plain database
// and then on an audited one (same server, separate schemas). It reports the
// time of each operation on both and the ratios audited/plain, and x-allocs,
// the heap allocations of an audited cycle over a plain one (counted after
// the timed loop, so that reading them does not slow it).
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench 'WriteCycle$' -benchtime 3000x -count 5 ./audit/
func BenchmarkWriteCycle(b *testing.B) {
	plain, audited := openBenchSides(b)
	var spent [2][3]time.Duration // [plain|audited][create|update|delete]
	// Warm both connection pools and statement caches.
	for i := 0; i < 20; i++ {
		plain.cycle(b, &[3]time.Duration{}, i)
		audited.cycle(b, &[3]time.Duration{}, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first so drift in the machine's load hits
		// both sides alike.
		if i%2 == 0 {
			plain.cycle(b, &spent[0], i)
			audited.cycle(b, &spent[1], i)
		} else {
			audited.cycle(b, &spent[1], i)
			plain.cycle(b, &spent[0], i)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	sum := func(s [3]time.Duration) time.Duration { return s[0] + s[1] + s[2] }
	for op, name := range []string{"create", "update", "delete"} {
		b.ReportMetric(per(spent[0][op]), "µs/plain-"+name)
		b.ReportMetric(per(spent[1][op]), "µs/audited-"+name)
		b.ReportMetric(float64(spent[1][op])/float64(spent[0][op]), "x-"+name)
	}
	b.ReportMetric(per(sum(spent[0])), "µs/plain-cycle")
	b.ReportMetric(per(sum(spent[1])), "µs/audited-cycle")
	b.ReportMetric(float64(sum(spent[1]))/float64(sum(spent[0])), "x-cycle")

	cycles := min(b.N, 200)
	plainAllocs := allocsPer(cycles, func(i int) { plain.cycle(b, &[3]time.Duration{}, i) })
	auditedAllocs := allocsPer(cycles, func(i int) { audited.cycle(b, &[3]time.Duration{}, i) })
	b.ReportMetric(plainAllocs, "allocs/plain-cycle")
	b.ReportMetric(auditedAllocs, "allocs/audited-cycle")
	b.ReportMetric(auditedAllocs/plainAllocs, "x-allocs")
	b.ReportMetric(0, "ns/op") // the sum of both sides means nothing; see the metrics above
}

// benchSide is one side of a side-by-side benchmark: a plain or an audited
// database, with a runbook whose steps the benchmark writes.
type benchSide struct {
	db      *gorm.DB
	runbook string
}

// benchSQLiteEnv selects the SQLite databases of the side-by-side
// benchmarks: unset, in memory (dbtest.Open); "file", files in a temporary
// directory opened as the example service opens its own (WAL, immediate
// transactions, one connection).
const benchSQLiteEnv = "GORMAUDIT_BENCH_SQLITE"

// openBenchSides opens a plain database (the runbook tables, no plugin) and
// an audited one (fixture.Open), each with a runbook of account 1, bound
// to a context carrying the fixture's actor.
func openBenchSides(b *testing.B) (plain, audited *benchSide) {
	ctx := context.Background()
	if dbtest.Dialect() == dbtest.SQLite && os.Getenv(benchSQLiteEnv) == "file" {
		plainDB, auditedDB := openSQLiteFile(b, "plain.db"), openSQLiteFile(b, "audited.db")
		require.NoError(b, runbooks.Migrate(ctx, plainDB))
		require.NoError(b, runbooks.Migrate(ctx, auditedDB))
		require.NoError(b, audit.Migrate(ctx, auditedDB))
		require.NoError(b, auditedDB.Use(audit.New(audit.Config{Models: runbooks.Models()})))
		return newBenchSide(b, plainDB), newBenchSide(b, auditedDB)
	}
	plainDB := dbtest.Open(b)
	require.NoError(b, runbooks.Migrate(ctx, plainDB))
	return newBenchSide(b, plainDB), newBenchSide(b, fixture.Open(b, nil).DB)
}

// openSQLiteFile opens a SQLite file of the benchmark's temporary
// directory with the example service's settings.
func openSQLiteFile(b *testing.B, name string) *gorm.DB {
	dsn := "file:" + filepath.Join(b.TempDir(), name) + "?_foreign_keys=1&_busy_timeout=5000&_txlock=immediate&_journal_mode=WAL"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	require.NoError(b, err)
	sqlDB, err := db.DB()
	require.NoError(b, err)
	sqlDB.SetMaxOpenConns(1)
	b.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

func newBenchSide(b *testing.B, db *gorm.DB) *benchSide {
	rb := runbooks.Runbook{AccountID: 1, Name: "bench"}
	require.NoError(b, db.Create(&rb).Error)
	return &benchSide{db: db.WithContext(audit.WithActor(context.Background(), fixture.Actor)), runbook: rb.ID}
}

// step is a new step of the side's runbook.
func (s *benchSide) step(i int) runbooks.Step {
	return runbooks.Step{AccountID: 1, RunbookID: s.runbook, Name: "step", Position: i,
		Config: runbooks.JSON(`{"role":{"label":"Commander"}}`)}
}

// cycle creates a step, updates two of its columns and deletes it, each
// write in its own transaction, adding the time of each to spent.
func (s *benchSide) cycle(b *testing.B, spent *[3]time.Duration, i int) {
	if err := s.tryCycle(spent, i); err != nil {
		b.Fatal(err)
	}
}

// tryCycle is cycle returning its error, for goroutines other than the
// benchmark's.
func (s *benchSide) tryCycle(spent *[3]time.Duration, i int) error {
	st := s.step(i)
	t0 := time.Now()
	if err := s.db.Create(&st).Error; err != nil {
		return err
	}
	t1 := time.Now()
	if err := s.db.Model(&st).Updates(map[string]any{"name": fmt.Sprint("step ", i), "position": i + 1}).Error; err != nil {
		return err
	}
	t2 := time.Now()
	if err := s.db.Delete(&st).Error; err != nil {
		return err
	}
	t3 := time.Now()
	spent[0] += t1.Sub(t0)
	spent[1] += t2.Sub(t1)
	spent[2] += t3.Sub(t2)
	return nil
}

// allocsPer runs f n times and returns the heap allocations of one run,
// counted by the runtime (every goroutine's, so the database driver's
// too).
func allocsPer(n int, f func(i int)) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		f(i)
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}

// BenchmarkBatchWrite compares plain and audited gorm on batch writes, side
// by side in one run: each iteration gives a runbook 100 and another 1,000
// new steps on each side (not timed), then times one
// Where("runbook_id = ?").Updates of two columns over all of a runbook's
// steps, and one Where("runbook_id = ?").Delete (soft) of them, in that
// order, on both sides, alternating which side goes first. It reports the
// time of each on both and the ratios x-update-N and x-delete-N.
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench BatchWrite -benchtime 20x -count 3 ./audit/
func BenchmarkBatchWrite(b *testing.B) {
	plain, audited := openBenchSides(b)
	sizes := []int{100, 1000}
	// spent[size][plain|audited][update|delete]
	spent := make([][2][2]time.Duration, len(sizes))
	for i := 0; i < b.N; i++ {
		for k, n := range sizes {
			sides := [2]*benchSide{plain, audited}
			ids := [2]string{}
			b.StopTimer()
			for j, s := range sides {
				ids[j] = s.batch(b, n)
			}
			b.StartTimer()
			order := []int{0, 1}
			if i%2 == 1 {
				order = []int{1, 0}
			}
			for op := 0; op < 2; op++ {
				for _, j := range order {
					spent[k][j][op] += sides[j].batchWrite(b, ids[j], op, i)
				}
			}
		}
	}
	b.StopTimer()
	for k, n := range sizes {
		for op, name := range []string{"update", "delete"} {
			suffix := fmt.Sprintf("%s-%d", name, n)
			b.ReportMetric(float64(spent[k][0][op].Microseconds())/float64(b.N), "µs/plain-"+suffix)
			b.ReportMetric(float64(spent[k][1][op].Microseconds())/float64(b.N), "µs/audited-"+suffix)
			b.ReportMetric(float64(spent[k][1][op])/float64(spent[k][0][op]), "x-"+suffix)
		}
	}
	b.ReportMetric(0, "ns/op") // the sum of both sides means nothing; see the metrics above
}

// batch creates a runbook with n steps, in batches of 500, and returns its
// id.
func (s *benchSide) batch(b *testing.B, n int) string {
	rb := runbooks.Runbook{AccountID: 1, Name: "batch"}
	require.NoError(b, s.db.Create(&rb).Error)
	steps := make([]runbooks.Step, n)
	for i := range steps {
		steps[i] = runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "step", Position: i,
			Config: runbooks.JSON(`{"role":{"label":"Commander"}}`)}
	}
	require.NoError(b, s.db.CreateInBatches(&steps, 500).Error)
	return rb.ID
}

// batchWrite runs, and times, the update (op 0) or the soft delete (op 1)
// of every step of runbook rb, requiring every step written.
func (s *benchSide) batchWrite(b *testing.B, rb string, op, i int) time.Duration {
	q := s.db.Model(&runbooks.Step{}).Where("runbook_id = ?", rb)
	t0 := time.Now()
	var res *gorm.DB
	if op == 0 {
		res = q.Updates(map[string]any{"name": fmt.Sprint("batch ", i), "position": i + 1})
	} else {
		res = q.Delete(&runbooks.Step{})
	}
	d := time.Since(t0)
	if res.Error != nil {
		b.Fatal(res.Error)
	}
	if res.RowsAffected == 0 {
		b.Fatal("batch write changed no row")
	}
	return d
}

// BenchmarkConcurrentWrites compares the throughput of plain and audited
// gorm under 8 concurrent writers, side by side in one run: in each
// iteration 8 goroutines each run 5 write cycles (create, update, delete;
// see BenchmarkWriteCycle) of their own steps on one side, then on the
// other, alternating which side goes first. It reports each side's writes
// per second and x-throughput, audited over plain (higher is better).
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench ConcurrentWrites -benchtime 200x -count 3 ./audit/
func BenchmarkConcurrentWrites(b *testing.B) {
	const writers, cycles = 8, 5
	plain, audited := openBenchSides(b)
	round := func(s *benchSide, i int) time.Duration {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		t0 := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := 0; c < cycles && errs[w] == nil; c++ {
					errs[w] = s.tryCycle(&[3]time.Duration{}, (i*writers+w)*cycles+c)
				}
			}()
		}
		wg.Wait()
		d := time.Since(t0)
		for _, err := range errs {
			require.NoError(b, err)
		}
		return d
	}
	round(plain, 0) // warm both pools to 8 connections
	round(audited, 0)
	var spent [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			spent[0] += round(plain, i)
			spent[1] += round(audited, i)
		} else {
			spent[1] += round(audited, i)
			spent[0] += round(plain, i)
		}
	}
	b.StopTimer()
	writes := float64(b.N * writers * cycles * 3)
	b.ReportMetric(writes/spent[0].Seconds(), "writes/s-plain")
	b.ReportMetric(writes/spent[1].Seconds(), "writes/s-audited")
	b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "x-throughput")
	b.ReportMetric(0, "ns/op") // the sum of both sides means nothing; see the metrics above
}
