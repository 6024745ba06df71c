package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/internal/scaletest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// BenchmarkWriteCycleAtScale shows that an audited write costs the same
// whatever the size of the audit log: it runs the write cycle of
// BenchmarkWriteCycle (create a step, update two of its columns, delete it,
// each in its own transaction) on a plain database, on an audited one with
// an empty log and on an audited one whose log already holds rows=N seeded
// rows (see internal/scaletest), the three interleaved in one run. Each
// sub-benchmark reports x-cycle, the audited/plain ratio at N rows, and for
// N > 0 x-cycle-rows0, the same ratio on the empty log in the same run, and
// x-vs-rows0, audited at N over audited at 0.
//
// The sizes are small by default; the README's "Operating at scale" runs
//
//	GORMAUDIT_SCALE_ROWS=0,1000000,10000000 GORMAUDIT_SCALE_KEEP=1 \
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench WriteCycleAtScale -benchtime 3000x -timeout 2h ./audit/
func BenchmarkWriteCycleAtScale(b *testing.B) {
	sizes := scaletest.Rows(b, 0, 10_000)
	plainDB := dbtest.Open(b)
	require.NoError(b, runbooks.Migrate(context.Background(), plainDB))
	plain := newCycler(b, plainDB)
	empty := newCycler(b, scaletest.Open(b, 0, nil).DB)
	for _, n := range sizes {
		full := empty
		if n > 0 {
			full = newCycler(b, scaletest.Open(b, n, nil).DB)
		}
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			sides := []*cycler{plain, full}
			if n > 0 {
				sides = append(sides, empty)
			}
			for _, s := range sides {
				s.spent = [3]time.Duration{}
				s.warm(b)
			}
			i := 0
			for b.Loop() {
				// Rotate which side goes first so that drift in the
				// machine's load hits every side alike.
				for k := range sides {
					sides[(i+k)%len(sides)].cycle(b, i)
				}
				i++
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(i) }
			b.ReportMetric(per(plain.total()), "µs/plain-cycle")
			b.ReportMetric(per(full.total()), "µs/audited-cycle")
			b.ReportMetric(float64(full.total())/float64(plain.total()), "x-cycle")
			if n > 0 {
				b.ReportMetric(float64(empty.total())/float64(plain.total()), "x-cycle-rows0")
				b.ReportMetric(float64(full.total())/float64(empty.total()), "x-vs-rows0")
			}
			b.ReportMetric(0, "ns/op") // the sum of the sides means nothing; see the metrics above
		})
	}
}

// cycler runs the write cycle of BenchmarkWriteCycle on one database and
// adds up the time of each operation.
type cycler struct {
	db      *gorm.DB
	runbook string
	spent   [3]time.Duration // create, update, delete
}

func newCycler(b *testing.B, db *gorm.DB) *cycler {
	rb := runbooks.Runbook{AccountID: 1, Name: "bench"}
	require.NoError(b, db.Create(&rb).Error)
	return &cycler{db: db.WithContext(audit.WithActor(context.Background(), fixture.Actor)), runbook: rb.ID}
}

// warm fills the connection pool and the statement caches.
func (c *cycler) warm(b *testing.B) {
	spent := c.spent
	for i := range 20 {
		c.cycle(b, i)
	}
	c.spent = spent
}

func (c *cycler) total() time.Duration { return c.spent[0] + c.spent[1] + c.spent[2] }

func (c *cycler) cycle(b *testing.B, i int) {
	s := runbooks.Step{AccountID: 1, RunbookID: c.runbook, Name: "step", Position: i,
		Config: runbooks.JSON(`{"role":{"label":"Commander"}}`)}
	t0 := time.Now()
	if err := c.db.Create(&s).Error; err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	if err := c.db.Model(&s).Updates(map[string]any{"name": fmt.Sprint("step ", i), "position": i + 1}).Error; err != nil {
		b.Fatal(err)
	}
	t2 := time.Now()
	if err := c.db.Delete(&s).Error; err != nil {
		b.Fatal(err)
	}
	t3 := time.Now()
	c.spent[0] += t1.Sub(t0)
	c.spent[1] += t2.Sub(t1)
	c.spent[2] += t3.Sub(t2)
}
