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
	"github.com/gormaudit/gormaudit/runbooks"
)

// BenchmarkWriteCycle compares plain gorm with audited gorm, side by side in
// one run: each iteration creates a step, updates two of its columns and
// deletes it, each write in its own transaction, first on a plain database
// and then on an audited one (same server, separate schemas). It reports the
// time of each operation on both and the ratios audited/plain.
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench WriteCycle -benchtime 3000x ./audit/
func BenchmarkWriteCycle(b *testing.B) {
	ctx := context.Background()
	withRunbook := func(db *gorm.DB) (*gorm.DB, string) {
		rb := runbooks.Runbook{AccountID: 1, Name: "bench"}
		require.NoError(b, db.Create(&rb).Error)
		return db.WithContext(audit.WithActor(ctx, fixture.Actor)), rb.ID
	}
	plainDB := dbtest.Open(b)
	require.NoError(b, runbooks.Migrate(ctx, plainDB))
	plain, plainRunbook := withRunbook(plainDB)
	audited, auditedRunbook := withRunbook(fixture.Open(b, nil).DB)

	var spent [2][3]time.Duration // [plain|audited][create|update|delete]
	cycle := func(db *gorm.DB, runbookID string, spent *[3]time.Duration, i int) {
		s := runbooks.Step{AccountID: 1, RunbookID: runbookID, Name: "step", Position: i,
			Config: runbooks.JSON(`{"role":{"label":"Commander"}}`)}
		t0 := time.Now()
		if err := db.Create(&s).Error; err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := db.Model(&s).Updates(map[string]any{"name": fmt.Sprint("step ", i), "position": i + 1}).Error; err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := db.Delete(&s).Error; err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		spent[0] += t1.Sub(t0)
		spent[1] += t2.Sub(t1)
		spent[2] += t3.Sub(t2)
	}
	// Warm both connection pools and statement caches.
	for i := 0; i < 20; i++ {
		cycle(plain, plainRunbook, &[3]time.Duration{}, i)
		cycle(audited, auditedRunbook, &[3]time.Duration{}, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first so drift in the machine's load hits
		// both sides alike.
		if i%2 == 0 {
			cycle(plain, plainRunbook, &spent[0], i)
			cycle(audited, auditedRunbook, &spent[1], i)
		} else {
			cycle(audited, auditedRunbook, &spent[1], i)
			cycle(plain, plainRunbook, &spent[0], i)
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
	b.ReportMetric(0, "ns/op") // the sum of both sides means nothing; see the metrics above
}
