package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/internal/scaletest"
)

// BenchmarkListAtScale shows that the endpoint's reads cost the same
// whatever the size of the audit log. It seeds logs of each size of
// GORMAUDIT_SCALE_ROWS (see internal/scaletest; 10,000 and 20,000 rows by
// default) and, for every size after the first, runs each read on the
// first size's log and on this one, interleaved, reporting the time of both
// and their ratio x-<read>. The reads are those of the account that holds
// half of the log:
//
//   - first_page: the first page of the default listing;
//   - cursor_at_depth: a poll from a cursor deep in the stream (the same
//     depth at every size: half of the smallest log's account);
//   - runbook: the first page of one runbook's rows (the runbook in the
//     middle of the log);
//   - since_until: the first page of the rows of one day in the middle of
//     the log, a day holding 100 times more rows at 100 times the size;
//   - since_until_rows: the first page of a window holding the same
//     number of rows at every size (0.5% of the smallest log).
//
// The README's "Operating at scale" runs
//
//	GORMAUDIT_SCALE_ROWS=100000,10000000 GORMAUDIT_SCALE_KEEP=1 \
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench ListAtScale -benchtime 2000x -timeout 2h ./httpapi/
func BenchmarkListAtScale(b *testing.B) {
	sizes := scaletest.Rows(b, 10_000, 20_000)
	var logs []*scaleLog
	for _, n := range sizes {
		if n > 0 {
			logs = append(logs, openScaleLog(b, n))
		}
	}
	if len(logs) < 2 {
		b.Fatalf("BenchmarkListAtScale compares sizes: give %s at least two sizes above 0", scaletest.EnvRows)
	}
	base := logs[0]
	depth := base.Rows / 4 // half of account 1's rows
	window := max(base.Rows/200, 1)
	for _, l := range logs[1:] {
		reads := []struct {
			name  string
			query func(*scaleLog) string
		}{
			{"first_page", func(*scaleLog) string { return "" }},
			{"cursor_at_depth", func(s *scaleLog) string { return "cursor=" + s.cursorAt(b, depth) }},
			{"runbook", func(s *scaleLog) string { return "runbook_id=" + s.middleRunbook() }},
			{"since_until", func(s *scaleLog) string {
				mid := s.At(s.Rows / 2)
				return s.between(mid, mid.Add(24*time.Hour))
			}},
			{"since_until_rows", func(s *scaleLog) string {
				g := s.Rows / 2
				return s.between(s.At(g), s.At(g+window))
			}},
		}
		for _, r := range reads {
			b.Run(fmt.Sprintf("rows=%d/%s", l.Rows, r.name), func(b *testing.B) {
				sides := []*scaleLog{base, l}
				queries := []string{r.query(base), r.query(l)}
				var spent [2]time.Duration
				for k, s := range sides { // check the read, and warm both
					s.check(b, queries[k])
					for range 5 {
						s.read(b, queries[k])
					}
				}
				i := 0
				for b.Loop() {
					for k := range 2 {
						side := (i + k) % 2
						t0 := time.Now()
						sides[side].read(b, queries[side])
						spent[side] += time.Since(t0)
					}
					i++
				}
				b.ReportMetric(float64(spent[0].Microseconds())/float64(i), fmt.Sprintf("µs/rows=%d", base.Rows))
				b.ReportMetric(float64(spent[1].Microseconds())/float64(i), fmt.Sprintf("µs/rows=%d", l.Rows))
				b.ReportMetric(float64(spent[1])/float64(spent[0]), "x-"+r.name)
				b.ReportMetric(0, "ns/op") // the sum of both sides means nothing
			})
		}
	}
}

// scaleLog is a seeded log with a handler and a bot token of account 1.
type scaleLog struct {
	*scaletest.Log
	e     *env
	token string
}

func openScaleLog(b *testing.B, n int) *scaleLog {
	l := scaletest.Open(b, n, &fixture.Options{Migrations: []fixture.Migration{Migrate}, Accounts: []int64{1}})
	h, err := NewHandler(l.DB, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	e := &env{db: l.DB, h: h, ctx: l.Ctx}
	tok, _, err := IssueToken(l.Ctx, l.DB, TokenSpec{AccountID: 1, Name: "scale bench"})
	require.NoError(b, err)
	return &scaleLog{Log: l, e: e, token: tok}
}

// read makes one request and requires a 200.
func (s *scaleLog) read(b *testing.B, query string) {
	if res := s.e.get(b, s.token, query); res.status != http.StatusOK {
		b.Fatalf("rows=%d GET ?%s: %d %s", s.Rows, query, res.status, res.body)
	}
}

// check requires query to answer rows: a read that finds nothing would
// measure nothing. (A day of the smallest default log holds a few rows of
// the account, not always a page.)
func (s *scaleLog) check(b *testing.B, query string) {
	if got := s.e.list(b, s.token, query); len(got.Data) == 0 {
		b.Fatalf("rows=%d GET ?%s: no rows", s.Rows, query)
	}
}

// cursorAt returns the cursor of account 1's stream just before its
// depth-th seeded row.
func (s *scaleLog) cursorAt(b *testing.B, depth int) string {
	var id int64
	err := s.DB.Raw(`SELECT id FROM audits WHERE account_id = 1 AND transaction_id = 0 ORDER BY id LIMIT 1 OFFSET ?`, depth-1).
		Scan(&id).Error
	require.NoError(b, err)
	require.NotZero(b, id)
	return encodeCursor(auditlist.Position{TxID: 0, ID: id})
}

// middleRunbook returns the id of account 1's runbook nearest the middle
// of the log.
func (s *scaleLog) middleRunbook() string {
	rec := s.Rows / 8 // the record of the middle row
	rec -= rec % 10   // its group's runbook, in an even group: account 1
	_, id := scaletest.Record(rec)
	return id
}

// between is the query of the rows written from since until until.
func (s *scaleLog) between(since, until time.Time) string {
	return "since=" + url.QueryEscape(since.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339Nano))
}
