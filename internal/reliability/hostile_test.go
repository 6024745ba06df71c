package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"
)

// lockedBuffer is a log sink shared by the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	ours   = int64(11) // the bot's account
	theirs = int64(22) // another tenant
)

// hostile is an httptest server running the audit endpoint over two
// accounts' data, with its request log captured.
type hostile struct {
	e        *env
	srv      *httptest.Server
	h        http.Handler
	log      *lockedBuffer
	token    string
	theirIDs []string // ids of the other account's records
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	e := setup(t)
	hs := &hostile{e: e, log: &lockedBuffer{}}
	for _, acct := range []int64{ours, theirs} {
		_, err := audit.EnableAccount(e.ctx, e.db, acct)
		require.NoError(t, err)
		rb := runbooks.Runbook{AccountID: acct, Name: fmt.Sprintf("runbook %d", acct)}
		require.NoError(t, e.w().Create(&rb).Error)
		for i := range 3 {
			s := runbooks.Step{AccountID: acct, RunbookID: rb.ID, Name: fmt.Sprintf("step %d", i), Position: i}
			require.NoError(t, e.w().Create(&s).Error)
			require.NoError(t, e.w().Model(&s).Update("position", i+10).Error)
			if acct == theirs {
				hs.theirIDs = append(hs.theirIDs, s.ID)
			}
		}
		if acct == theirs {
			hs.theirIDs = append(hs.theirIDs, rb.ID)
		}
	}
	var err error
	hs.token, _, err = httpapi.IssueToken(e.ctx, e.db, httpapi.TokenSpec{AccountID: ours, Name: "hostile-input bot"})
	require.NoError(t, err)
	h, err := httpapi.NewHandler(e.db, &httpapi.Options{Logger: slog.New(slog.NewJSONHandler(hs.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	hs.h = h
	mux := http.NewServeMux()
	mux.Handle("/v1/runbook_audits", h)
	hs.srv = httptest.NewUnstartedServer(mux)
	// Let 1 MB header values through to the handler instead of having
	// net/http refuse them first (its default limit is 1 MB in all).
	hs.srv.Config.MaxHeaderBytes = 4 << 20
	hs.srv.Start()
	t.Cleanup(hs.srv.Close)
	return hs
}

type reply struct {
	status int
	body   []byte
}

// get sends rawQuery, with header values set (the token's, unless given),
// through the server.
func (hs *hostile) get(t *testing.T, rawQuery string, header map[string][]string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.srv.URL+"/v1/runbook_audits", nil)
	require.NoError(t, err)
	req.URL.RawQuery = rawQuery
	req.Header.Set("Authorization", "Bearer "+hs.token)
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := hs.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return reply{res.StatusCode, body}
}

// direct calls the handler without a server, for input no HTTP client
// sends as is (raw invalid UTF-8 in the request line).
func (hs *hostile) direct(rawQuery string) reply {
	r := httptest.NewRequest(http.MethodGet, "/v1/runbook_audits", nil)
	r.URL.RawQuery = rawQuery
	r.Header.Set("Authorization", "Bearer "+hs.token)
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, r)
	return reply{w.Code, w.Body.Bytes()}
}

// requireSafe checks the invariants of every reply: no 5xx, and a 200
// holds only our account's rows and mentions none of the other account's
// records.
func (hs *hostile) requireSafe(t *testing.T, name string, r reply) {
	t.Helper()
	require.Less(t, r.status, 500, "%s: %s", name, clipped(r.body))
	for _, id := range hs.theirIDs {
		require.NotContains(t, string(r.body), id, "%s: another account's record in the reply", name)
	}
	if r.status != http.StatusOK {
		require.GreaterOrEqual(t, r.status, 400, name)
		return
	}
	var page struct {
		Data []audit.Audit `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.body, &page), name)
	for _, a := range page.Data {
		require.Equal(t, ours, a.AccountID, "%s: row %d of another account", name, a.ID)
	}
}

func clipped(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// TestReliabilityHostileInput is not parallel, so that the heap it reports
// is its own: sequential tests finish before parallel ones start.
func TestReliabilityHostileInput(t *testing.T) {
	rep := report(t, "hostile HTTP input")
	hs := newHostile(t)
	mb := strings.Repeat("A", 1<<20)

	injections := []string{
		`' OR '1'='1`, `1; DROP TABLE audits; --`, `" OR ""="`, `') UNION SELECT * FROM audit_api_tokens --`,
		`%' OR account_id <> 0 OR '%'='`, `\'; SELECT pg_sleep(10); --`, `1 OR 1=1`, `$1`, `?`, `::text`,
	}
	huge := []string{
		"99999999999999999999999999", "9223372036854775808", "-9223372036854775809", "1e309", "0x7fffffff",
		"-1", "0", "1.5", "NaN", "+Inf", "１２",
	}
	type tc struct {
		name  string
		query string
		hdr   map[string][]string
		raw   bool // call the handler directly
		want  int  // 0: any non-5xx
	}
	var cases []tc
	for _, p := range []string{"auditable_id", "runbook_id", "user_id", "auditable_type", "action", "sort", "since", "until", "cursor", "after_id", "page", "per_page"} {
		for _, v := range injections {
			cases = append(cases, tc{name: p + " injection " + v, query: p + "=" + url.QueryEscape(v)})
		}
	}
	for _, p := range []string{"page", "per_page", "after_id"} {
		for _, v := range huge {
			c := tc{name: p + "=" + v, query: p + "=" + url.QueryEscape(v), want: http.StatusBadRequest}
			if v == "0" && p == "after_id" {
				c.want = http.StatusOK // the start of the polling stream
			}
			cases = append(cases, c)
		}
	}
	for _, p := range []string{"since", "until"} {
		for _, v := range []string{"99999-12-31T00:00:00Z", "0000-00-00T00:00:00Z", "-292277022657-01-27T08:29:52Z", "2024-13-45T99:99:99Z"} {
			cases = append(cases, tc{name: p + "=" + v, query: p + "=" + url.QueryEscape(v), want: http.StatusBadRequest})
		}
	}
	for _, id := range hs.theirIDs {
		cases = append(cases,
			tc{name: "their auditable_id", query: "auditable_id=" + id},
			tc{name: "their runbook_id", query: "runbook_id=" + id})
	}
	cases = append(cases,
		tc{name: "percent-encoded invalid UTF-8 value", query: "auditable_id=%ff%fe%fd", want: http.StatusBadRequest},
		tc{name: "percent-encoded invalid UTF-8 name", query: "%ff%fe=1", want: http.StatusBadRequest},
		tc{name: "raw invalid UTF-8 value", query: "auditable_id=\xff\xfe", raw: true, want: http.StatusBadRequest},
		tc{name: "raw invalid UTF-8 name", query: "\xc3\x28=1", raw: true, want: http.StatusBadRequest},
		tc{name: "NUL byte", query: "user_id=%00", want: http.StatusBadRequest},
		tc{name: "bad percent-encoding", query: "user_id=%zz", want: http.StatusBadRequest},
		tc{name: "1 MB query string value", query: "auditable_id=" + mb, want: http.StatusBadRequest},
		tc{name: "1 MB query string of parameters", query: strings.Repeat("page=1&", 1<<20/7), want: http.StatusBadRequest},
		tc{name: "1 MB query string, handler direct", query: "user_id=" + mb, raw: true, want: http.StatusBadRequest},
		tc{name: "1 MB Authorization header", hdr: map[string][]string{"Authorization": {"Bearer " + mb}}, want: http.StatusUnauthorized},
		tc{name: "1 MB Authorization header after the token", hdr: map[string][]string{"Authorization": {"Bearer " + hs.token + mb}}, want: http.StatusUnauthorized},
		tc{name: "two Authorization headers", hdr: map[string][]string{"Authorization": {"Bearer " + hs.token, "Bearer " + hs.token}}, want: http.StatusUnauthorized},
		tc{name: "invalid UTF-8 Authorization header", hdr: map[string][]string{"Authorization": {"Bearer \xff\xfe"}}, want: http.StatusUnauthorized},
		tc{name: "SQL injection as the token", hdr: map[string][]string{"Authorization": {"Bearer ' OR '1'='1"}}, want: http.StatusUnauthorized},
		tc{name: "1 MB unrelated header, valid token", hdr: map[string][]string{"X-Padding": {mb}}},
		tc{name: "1 MB of 1000 headers", hdr: manyHeaders(1000, 1<<10)},
	)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := before.HeapInuse
	statuses := map[int]int{}
	for _, c := range cases {
		var r reply
		if c.raw {
			r = hs.direct(c.query)
		} else {
			r = hs.get(t, c.query, c.hdr)
		}
		name := c.name
		hs.requireSafe(t, name, r)
		if c.want != 0 {
			require.Equal(t, c.want, r.status, "%s: %s", name, clipped(r.body))
		}
		statuses[r.status]++
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
	}
	runtime.ReadMemStats(&after)
	const MiB = 1 << 20
	growth := float64(peak-before.HeapInuse) / MiB
	allocated := float64(after.TotalAlloc-before.TotalAlloc) / MiB
	t.Logf("%d requests: statuses %v; heap in use %.1f MiB before, peak %.1f MiB (+%.1f MiB); %.1f MiB allocated in all",
		len(cases), statuses, float64(before.HeapInuse)/MiB, float64(peak)/MiB, growth, allocated)
	require.Less(t, growth, 64.0, "the heap must stay bounded while serving 1 MB inputs")

	// The valid request still works and sees exactly our rows.
	r := hs.get(t, "per_page=100", nil)
	require.Equal(t, http.StatusOK, r.status)
	hs.requireSafe(t, "valid request", r)
	var page struct {
		Data []audit.Audit `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.body, &page))
	require.Len(t, page.Data, 3*2, "a create and an update per step: without a type filter, pages hold the hosted default, Runbooks::Step")

	rep.set(fmt.Sprintf("%d requests incl. 1 MB query strings and headers; peak heap in use +%.1f MiB, %.1f MiB allocated", len(cases)+1, growth, allocated),
		fmt.Sprintf("status never 5xx (%s); expected 400/401 per case; 200s hold only the bot's account and none of the other account's ids", statusSummary(statuses)))
}

func manyHeaders(n, size int) map[string][]string {
	h := map[string][]string{}
	for i := range n {
		h[fmt.Sprintf("X-Pad-%d", i)] = []string{strings.Repeat("b", size)}
	}
	return h
}

func statusSummary(m map[int]int) string {
	var parts []string
	for _, s := range []int{200, 400, 401, 403, 404, 413, 414, 431} {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d×%d", m[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// TestReliabilityTokensNotLogged sends the bot's token everywhere a client
// might put it, rightly or wrongly, and requires that the request log
// never holds it, nor its secret part.
func TestReliabilityTokensNotLogged(t *testing.T) {
	t.Parallel()
	rep := report(t, "tokens never logged")
	hs := newHostile(t)
	tok := hs.token
	secret := strings.TrimPrefix(tok, httpapi.TokenPrefix)
	esc := url.QueryEscape(tok)
	cases := []struct {
		name  string
		query string
		hdr   map[string][]string
	}{
		{"valid", "", nil},
		{"valid, bad query", "page=x", nil},
		{"lower-case scheme", "", map[string][]string{"Authorization": {"bearer " + tok}}},
		{"wrong scheme", "", map[string][]string{"Authorization": {"Token " + tok}}},
		{"no scheme", "", map[string][]string{"Authorization": {tok}}},
		{"trailing garbage", "", map[string][]string{"Authorization": {"Bearer " + tok + " x"}}},
		{"twice", "", map[string][]string{"Authorization": {"Bearer " + tok, "Bearer " + tok}}},
		{"as a cookie", "", map[string][]string{"Authorization": nil, "Cookie": {"token=" + tok}}},
		{"X-Api-Key", "", map[string][]string{"Authorization": nil, "X-Api-Key": {tok}}},
		{"access_token parameter", "access_token=" + esc, map[string][]string{"Authorization": nil}},
		{"in a filter value", "user_id=" + esc, nil},
		{"as the cursor", "cursor=" + esc, nil},
		{"as after_id", "after_id=" + esc, nil},
		{"pasted as the whole query", tok, nil},
		{"as a parameter name", esc + "=x", nil},
	}
	for _, c := range cases {
		r := hs.get(t, c.query, c.hdr)
		hs.requireSafe(t, c.name, r)
	}
	logged := hs.log.String()
	require.NotEmpty(t, logged)
	require.Equal(t, len(cases), strings.Count(logged, "httpapi: request"), "one log record per request")
	require.NotContains(t, logged, secret, "the request log holds the token")
	rep.set(fmt.Sprintf("%d requests, token in headers, cookie, query values", len(cases)),
		"captured slog JSON log: one record per request, token (and its secret part) absent")
}
