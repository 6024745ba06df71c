package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/httpapi/client"
)

// bigStep writes a step whose config is about size bytes.
func bigStep(t *testing.T, e *env, rb runbooks.Runbook, i, size int) {
	t.Helper()
	cfg := fmt.Sprintf(`{"blob":%q}`, strings.Repeat(string(rune('a'+i%26)), size))
	require.NoError(t, e.w().Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: fmt.Sprint(i), Config: runbooks.JSON(cfg)}).Error)
}

// rawData is a 200 body with its rows kept as they were encoded.
type rawData struct {
	Data       []json.RawMessage   `json:"data"`
	Pagination *apitype.Pagination `json:"pagination"`
	Cursor     *apitype.Cursor     `json:"cursor"`
}

func dataBytes(rows []json.RawMessage) int {
	n := 0
	for _, r := range rows {
		n += len(r) + 1
	}
	return n
}

// TestPageBytes fills pages with rows of about 1.8 kB under a 4 kB cap:
// pages hold fewer rows than per_page and say so, and polling with the
// cursor still returns every row exactly once.
func TestPageBytes(t *testing.T) {
	t.Parallel()
	const maxBytes = 4096
	e := setup(t, &Options{MaxPageBytes: maxBytes})
	token := e.bot(t, 1)
	rb := runbooks.Runbook{AccountID: 1, Name: "big"}
	require.NoError(t, e.w().Create(&rb).Error)
	for i := range 12 {
		bigStep(t, e, rb, i, 1200)
	}
	bigStep(t, e, rb, 12, 3*maxBytes) // one row over the cap on its own
	e.settle(t)
	all := e.streamIDs(t, 1, "1 = 1")
	require.Len(t, all, 14)

	get := func(q string) rawData {
		res := e.get(t, token, q)
		require.Equal(t, 200, res.status, "?%s: %s", q, res.body)
		var out rawData
		require.NoError(t, json.Unmarshal(res.body, &out))
		return out
	}

	// Page mode: the first page is cut at the cap and says so; the count
	// and page numbers keep their per_page meaning.
	p := get("per_page=10&sort=asc&auditable_type=Runbooks::Step")
	require.Less(t, len(p.Data), 10)
	require.LessOrEqual(t, dataBytes(p.Data), maxBytes)
	require.Equal(t, apitype.Pagination{Count: 13, CountExact: true, Page: 1, PerPage: 10, Items: len(p.Data), Pages: 2, Last: 2, Next: ptr(2), Truncated: true}, *p.Pagination)
	whole := get("per_page=2&sort=asc&auditable_type=Runbooks::Step")
	require.False(t, whole.Pagination.Truncated, "two rows fit")
	require.Equal(t, 2, whole.Pagination.Items)

	// Polling: every row once, in order, each response within the cap
	// unless it holds a single row.
	var got []int64
	q := "after_id=0&per_page=10"
	for range 20 {
		r := get(q)
		if len(r.Data) > 1 {
			require.LessOrEqual(t, dataBytes(r.Data), maxBytes)
		}
		for _, raw := range r.Data {
			var row struct{ ID int64 }
			require.NoError(t, json.Unmarshal(raw, &row))
			got = append(got, row.ID)
		}
		if !r.Cursor.More {
			break
		}
		q = "per_page=10&cursor=" + r.Cursor.Next
	}
	if d := cmp.Diff(all, got); d != "" {
		t.Fatalf("polled rows (-stream +polled):\n%s", d)
	}

	// The Go client reports the cut, and All reads the rows cut from
	// every page: each row once, in order, on every page size.
	c := e.client(t, token)
	page, err := c.List(t.Context(), &client.ListOptions{PerPage: 10, Ascending: true})
	require.NoError(t, err)
	require.True(t, page.Pagination.Truncated)
	require.Len(t, page.Rows, page.Pagination.Items)
	var want []int64 // page by page of one row, which is never cut
	for p := 1; ; p++ {
		one := e.list(t, token, fmt.Sprintf("per_page=1&sort=asc&page=%d", p))
		if len(one.Data) == 0 {
			break
		}
		want = append(want, one.Data[0].ID)
	}
	require.Len(t, want, 14, "the runbook and its 13 steps")
	for _, perPage := range []int{2, 3, 5, 10, 20} {
		var got []int64
		for row, err := range c.All(t.Context(), &client.ListOptions{PerPage: perPage, Ascending: true}) {
			require.NoError(t, err)
			got = append(got, row.ID)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("All with per_page %d (-want +got):\n%s", perPage, d)
		}
	}
}

// TestPageBytesLargeRows reads 20 rows of 1 MB configs, the page that was
// a 37 MB response: with the default cap it holds what fits in 1 MiB (and
// at least one row).
func TestPageBytesLargeRows(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	rb := runbooks.Runbook{AccountID: 1, Name: "big"}
	require.NoError(t, e.w().Create(&rb).Error)
	for i := range 20 {
		bigStep(t, e, rb, i, 1<<20-64)
	}
	res := e.get(t, token, "auditable_type=Runbooks::Step&per_page=20")
	require.Equal(t, 200, res.status)
	var out rawData
	require.NoError(t, json.Unmarshal(res.body, &out))
	require.Len(t, out.Data, 1, "a second 1 MB row would pass the 1 MiB cap")
	require.Less(t, len(res.body), 2<<20)
	require.True(t, out.Pagination.Truncated)
	t.Logf("response %d bytes for per_page=20 of 1 MB rows", len(res.body))
}
