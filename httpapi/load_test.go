package httpapi

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// TestLoad drives the handler over HTTP with 16 concurrent clients for
// 5,000 requests in all (a mix of pages, filters and polls) while two
// writers keep changing runbooks, and requires every response to be a 200.
// It logs the throughput and the 99th percentile latency.
func TestLoad(t *testing.T) {
	t.Parallel()
	const clients, total = 16, 5000
	e := setup(t, nil)
	token := e.bot(t, 1)
	seedRows(t, e.db, 4_000, 10)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: clients},
		Timeout:   30 * time.Second,
	}

	stop := make(chan struct{})
	var writes atomic.Int64
	var writers sync.WaitGroup
	writeErrs := make(chan error, 2)
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rb := runbooks.Runbook{AccountID: 1, Name: fmt.Sprint("load ", w, i)}
				if err := e.w().Create(&rb).Error; err != nil {
					writeErrs <- err
					return
				}
				if err := e.w().Model(&rb).Update("name", "changed").Error; err != nil {
					writeErrs <- err
					return
				}
				writes.Add(2)
			}
		})
	}

	queries := []string{
		"", "page=3", "per_page=100", "sort=asc&page=10", "auditable_type=Runbooks::Step",
		"runbook_id=r40", "user_id=u7", "action=update&since=2024-01-01T01:00:00Z",
		"after_id=0", "cursor=" + encodeCursor(auditlist.Position{ID: 1000}), "page=50",
	}
	var next atomic.Int64
	latencies := make([][]time.Duration, clients)
	statuses := make([]map[int]int, clients)
	errs := make([][]error, clients)
	begin := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		statuses[c] = map[int]int{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for next.Add(1) <= total {
				q := queries[rng.IntN(len(queries))]
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/runbook_audits?"+q, nil)
				if err != nil {
					errs[c] = append(errs[c], err)
					continue
				}
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					errs[c] = append(errs[c], err)
					continue
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				latencies[c] = append(latencies[c], time.Since(t0))
				statuses[c][res.StatusCode]++
				if err != nil {
					errs[c] = append(errs[c], err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	close(stop)
	writers.Wait()
	close(writeErrs)
	for err := range writeErrs {
		require.NoError(t, err)
	}

	all := slices.Concat(latencies...)
	status := map[int]int{}
	for _, m := range statuses {
		for k, v := range m {
			status[k] += v
		}
	}
	require.Empty(t, slices.Concat(errs...))
	require.Equal(t, map[int]int{http.StatusOK: total}, status, "every request answered 200")
	slices.Sort(all)
	p99 := all[len(all)*99/100]
	t.Logf("%d requests, %d clients, %d writes meanwhile: %.0f req/s, p50 %v, p99 %v",
		total, clients, writes.Load(), float64(total)/elapsed.Seconds(), all[len(all)/2].Round(time.Microsecond), p99.Round(time.Microsecond))
	require.Positive(t, writes.Load(), "writes ran during the load")
}
