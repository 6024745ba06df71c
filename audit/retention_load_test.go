package audit_test

import (
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// seedAudits inserts n audit rows with one SQL statement: records of 10
// versions each (a create, then updates) spread over 100 accounts, created
// step apart from from on. Whole seconds on SQLite, whose stored times are
// text.
func seedAudits(tb testing.TB, db *gorm.DB, n int, from time.Time, step time.Duration) {
	tb.Helper()
	const cols = `account_id, auditable_id, auditable_type, associated_id, associated_type, user_id, user_type,
		action, audited_changes, version, comment, remote_address, request_uuid, created_at, transaction_id`
	const values = `1 + (g / 10) % 100, 'seed-' || (g / 10), 'Runbooks::Runbook', '', '', 'seed', 'User',
		CASE WHEN g % 10 = 0 THEN 'create' ELSE 'update' END,
		CASE WHEN g % 10 = 0 THEN '{"name": "seed"}' ELSE '{"name": ["seed", "seed"]}' END`
	const rest = `, g % 10 + 1, '', '', ''`
	var err error
	if dbtest.Dialect() == dbtest.Postgres {
		err = db.Exec(`INSERT INTO audits (`+cols+`) SELECT `+values+`::jsonb`+rest+`,
			?::timestamptz + g * (? * interval '1 microsecond'), 0 FROM generate_series(0, ? - 1) AS g`,
			from.UTC(), step.Microseconds(), n).Error
		if err == nil {
			// As autovacuum would have: without statistics, PostgreSQL may
			// read a batch's id range through (account_id, id), whole.
			err = db.Exec(`ANALYZE audits`).Error
		}
	} else {
		err = db.Exec(`WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < ?)
			INSERT INTO audits (`+cols+`) SELECT `+values+rest+`,
			strftime('%Y-%m-%d %H:%M:%S+00:00', ?, '+' || (g * ?) || ' seconds'), 0 FROM s`,
			n, from.UTC().Format(time.DateTime), int64(step/time.Second)).Error
	}
	require.NoError(tb, err)
}

// write is one timed audited write.
type write struct{ start, end time.Time }

// writerPool is k goroutines that each rename a runbook of their own in a
// loop, each rename an audited transaction, timing every write.
type writerPool struct {
	mu     sync.Mutex
	writes []write
	err    error
	halt   chan struct{}
	wg     sync.WaitGroup
}

func startWriters(db *gorm.DB, k int) *writerPool {
	p := &writerPool{halt: make(chan struct{})}
	for w := range k {
		p.wg.Go(func() {
			rb := runbooks.Runbook{AccountID: int64(1000 + w), Name: "writer"}
			err := db.Create(&rb).Error
			for i := 0; err == nil; i++ {
				select {
				case <-p.halt:
					return
				default:
				}
				start := time.Now()
				err = db.Model(&rb).Update("name", "rename "+strconv.Itoa(i)).Error
				p.mu.Lock()
				p.writes = append(p.writes, write{start, time.Now()})
				p.mu.Unlock()
			}
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
		})
	}
	return p
}

// count is the number of writes done so far.
func (p *writerPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.writes)
}

// stop stops the writers and returns every write and the first error.
func (p *writerPool) stop() ([]write, error) {
	close(p.halt)
	p.wg.Wait()
	return p.writes, p.err
}

// latency is the longest of the writes that overlapped [from, to], and
// how many did.
func latency(ws []write, from, to time.Time) (worst time.Duration, n int) {
	for _, w := range ws {
		if w.end.Before(from) || w.start.After(to) {
			continue
		}
		n++
		worst = max(worst, w.end.Sub(w.start))
	}
	return worst, n
}

// pruneUnderLoad seeds n rows created in January to April 2026, starts 4
// writers writing in June, lets them write idle for a moment, prunes
// every seeded row with opts and stops them. It returns
// the report, the prune's duration, and the writers' longest latencies
// while idle and while pruning.
func pruneUnderLoad(tb testing.TB, b *bundle, n int, opts *audit.PruneOptions) (report *audit.PruneReport,
	took, idle, pruning time.Duration, during int) {
	tb.Helper()
	step := 120 * 24 * time.Hour / time.Duration(n)
	if dbtest.Dialect() == dbtest.SQLite {
		step = max(step.Truncate(time.Second), time.Second)
	}
	seedAudits(tb, b.db, n, date(1, 1), step)

	pool := startWriters(b.w(), 4)
	idleFrom := time.Now()
	// The writers' latency while nothing else runs, to compare with: over
	// 200 writes. (A poll, not a synchronization: nothing waits for a
	// particular write.)
	for pool.count() < 200 && time.Since(idleFrom) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	report, err := audit.Prune(b.ctx, b.db, audit.RetentionPolicy{Before: date(5, 1)}, opts)
	t1 := time.Now()
	ws, werr := pool.stop()
	require.NoError(tb, err)
	require.NoError(tb, werr)
	idle, _ = latency(ws, idleFrom, t0)
	pruning, during = latency(ws, t0, t1)
	return report, t1.Sub(t0), idle, pruning, during
}

// TestPruneWhileWritersWrite prunes 20,000 rows in batches of 2,000 while 4
// writers write, and checks that they kept writing: none waited for more
// than a third of the prune (on PostgreSQL they wait for no batch; on
// SQLite, whose single writer runs one transaction at a time, for at most
// about one). The latencies are logged; BenchmarkPrune reports them.
func TestPruneWhileWritersWrite(t *testing.T) {
	t.Parallel()
	clk := &runningClock{start: date(6, 1), since: time.Now()}
	b := setup(t, audit.Config{Now: clk.Now})
	report, took, idle, pruning, during := pruneUnderLoad(t, b, 20000,
		&audit.PruneOptions{Archive: io.Discard, BatchSize: 2000})
	require.Equal(t, int64(20000), report.Removed)
	t.Logf("pruned %d rows in %v on %s; 4 writers: %d writes during the prune, longest %v (idle: %v)",
		report.Removed, took.Round(time.Millisecond), dbtest.Dialect(), during, pruning.Round(time.Millisecond),
		idle.Round(time.Millisecond))
	require.Positive(t, during, "the writers wrote while the prune ran")
	require.Less(t, pruning, took/3, "no writer waited long")
}

// runningClock reads start plus the time elapsed since since.
type runningClock struct{ start, since time.Time }

func (c *runningClock) Now() time.Time { return c.start.Add(time.Since(c.since)) }

// BenchmarkPrune prunes rows seeded with SQL while 4 writers write, on the
// plain audits table (batched deletes) and, on PostgreSQL, on the
// partitioned layout (whole partitions dropped), side by side. It reports
// rows removed per second, the writers' longest latency during the prune
// and while idle before it, and their ratio. The rows number
// GORMAUDIT_PRUNE_ROWS, 20,000 by default:
//
//	GORMAUDIT_PRUNE_ROWS=10000000 TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench BenchmarkPrune -benchtime 1x -timeout 2h ./audit/
func BenchmarkPrune(b *testing.B) {
	n := 20000
	if s := os.Getenv("GORMAUDIT_PRUNE_ROWS"); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		require.NoError(b, err)
	}
	layouts := []string{"batched"}
	if dbtest.Dialect() == dbtest.Postgres {
		layouts = append(layouts, "partitioned")
	}
	for _, layout := range layouts {
		b.Run(layout, func(b *testing.B) {
			var rate, worst, idleWorst []float64
			for range b.N {
				b.StopTimer()
				clk := &runningClock{start: date(6, 1), since: time.Now()}
				bd := setup(b, audit.Config{Now: clk.Now})
				if layout == "partitioned" {
					partitionAudits(b, bd.db, time.December)
				}
				b.StartTimer()
				report, took, idle, pruning, _ := pruneUnderLoad(b, bd, n, &audit.PruneOptions{})
				require.Equal(b, int64(n), report.Removed)
				rate = append(rate, float64(report.Removed)/took.Seconds())
				worst = append(worst, float64(pruning.Microseconds())/1000)
				idleWorst = append(idleWorst, float64(idle.Microseconds())/1000)
			}
			b.ReportMetric(slices.Min(rate), "rows/s")
			b.ReportMetric(slices.Max(worst), "max-write-ms")
			b.ReportMetric(slices.Max(idleWorst), "idle-max-write-ms")
			b.ReportMetric(slices.Max(worst)/slices.Max(idleWorst), "max-write-ratio")
		})
	}
}
