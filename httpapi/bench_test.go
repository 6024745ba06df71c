package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gormaudit/gormaudit/internal/dbtest"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// BenchmarkList measures the endpoint, through the handler with bot token
// authentication, on a large account: account 1 holds half of the seeded
// rows (500,000 of 1,000,000 over 100 accounts on PostgreSQL; 10,000 of
// 20,000 on SQLite, to keep `go test -bench .` fast). It compares the first
// page, a deep page by number (page 1,000 of 20 rows on PostgreSQL) and
// the same depth reached with the polling cursor, and reports each deep
// read's ratio to the first page. The count sub-benchmarks show what
// counting costs with and without the cap of Options.CountLimit.
func BenchmarkList(b *testing.B) {
	rows, page := 20_000, 250
	if dbtest.Dialect() == dbtest.Postgres {
		rows, page = 1_000_000, 1000
	}
	e := setup(b, nil)
	start := time.Now()
	seedRows(b, e.db, rows, 100)
	b.Logf("seeded %d rows in %v", rows, time.Since(start).Round(time.Millisecond))
	token := e.bot(b, 1)

	// The stream position just before the deep page's first row.
	depth := (page - 1) * 20
	var before int64
	if err := e.db.Raw(`SELECT id FROM audits WHERE account_id = 1 ORDER BY transaction_id, id LIMIT 1 OFFSET ?`, depth-1).
		Scan(&before).Error; err != nil {
		b.Fatal(err)
	}
	cursor := encodeCursor(auditlist.Position{TxID: 0, ID: before})

	var first float64 // ns per first-page request
	run := func(name, query string, ratio bool) {
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				res := e.get(b, token, query)
				if res.status != http.StatusOK {
					b.Fatalf("GET ?%s: %d %s", query, res.status, res.body)
				}
				n++
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(n)
			if !ratio {
				first = ns
				return
			}
			b.ReportMetric(ns/first, "x_first_page")
		})
	}
	run("first_page", "", false)
	run(fmt.Sprintf("page_%d", page), fmt.Sprintf("page=%d", page), true)
	run("cursor_same_depth", "cursor="+cursor, true)

	for _, c := range []struct {
		name  string
		limit int
	}{{"count_capped_10000", 10_000}, {"count_uncapped", rows}} {
		s := auditlist.Count(&auditlist.Filter{}, 1, c.limit)
		b.Run(c.name, func(b *testing.B) {
			var n int64
			for b.Loop() {
				if err := e.db.Raw(s.SQL, s.Args...).Scan(&n).Error; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "rows_counted")
		})
	}
}
