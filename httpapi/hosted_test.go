package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/httpapi/client"
)

// sdkRequest sends the request of the hosted endpoint's TypeScript SDK,
// header for header, to url (which carries the SDK's query string), and
// returns the status and the decoded body.
func sdkRequest(t *testing.T, srv *httptest.Server, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header = http.Header{
		"Accept":          {"*/*"},
		"Accept-Encoding": {"gzip, deflate"},
		"Accept-Language": {"*"},
		"Authorization":   {token}, // the API key, raw: no Bearer
		"Cookie":          {""},
		"Sec-Fetch-Mode":  {"cors"},
		"User-Agent":      {"speakeasy-sdk/typescript 0.3.1 2.512.4 1.0.0 runbook-audits"},
	}
	// The client sets Accept-Encoding itself, so the transport must not
	// add or undo one.
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// TestSDKRequest replays the hosted SDKs' request and requires the rows our
// Go client reads with the same parameters.
func TestSDKRequest(t *testing.T) {
	t.Parallel()
	e := setup(t, &Options{DefaultAuditableType: runbooks.TypeStep}) // the default
	token := e.bot(t, 1)
	writeFixture(t, e)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	c := e.client(t, token)

	cases := []struct {
		query string
		opts  client.ListOptions
	}{
		{"auditable_type=Runbooks%3A%3AStep", client.ListOptions{Filters: client.Filters{AuditableType: runbooks.TypeStep}}},
		{"auditable_type=Runbooks%3A%3AStep&page=2&per_page=2&sort=asc",
			client.ListOptions{Filters: client.Filters{AuditableType: runbooks.TypeStep}, Page: 2, PerPage: 2, Ascending: true}},
		{"auditable_type=Runbooks%3A%3ARunbook&page=1&per_page=1&sort=desc",
			client.ListOptions{Filters: client.Filters{AuditableType: runbooks.TypeRunbook}, Page: 1, PerPage: 1}},
		{"auditable_type=Runbooks%3A%3AStep&sort=ASC", client.ListOptions{Filters: client.Filters{AuditableType: runbooks.TypeStep}, Ascending: true}},
	}
	for _, cs := range cases {
		status, body := sdkRequest(t, srv, srv.URL+"/v1/runbook_audits?"+cs.query, token)
		require.Equal(t, http.StatusOK, status, "?%s: %s", cs.query, body)
		var got struct {
			Data       []client.Row        `json:"data"`
			Pagination *apitype.Pagination `json:"pagination"`
		}
		require.NoError(t, json.Unmarshal(body, &got))
		want, err := c.List(t.Context(), &cs.opts)
		require.NoError(t, err)
		require.NotEmpty(t, want.Rows, cs.query)
		if d := cmp.Diff(want.Rows, got.Data); d != "" {
			t.Fatalf("?%s: SDK rows differ from the Go client's (-client +sdk):\n%s", cs.query, d)
		}
		if d := cmp.Diff(want.Pagination, *got.Pagination); d != "" {
			t.Fatalf("?%s: pagination (-client +sdk):\n%s", cs.query, d)
		}
	}

	// A bad token reaches the SDK as a message it shows.
	status, body := sdkRequest(t, srv, srv.URL+"/v1/runbook_audits?auditable_type=Runbooks%3A%3AStep", TokenPrefix+"nope")
	require.Equal(t, http.StatusUnauthorized, status)
	var sdkErr struct {
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(body, &sdkErr))
	require.Contains(t, sdkErr.Message, "bot token")
}

// TestHostedDefaults checks the hosted endpoint's answers to requests that
// leave parameters out: only steps without a type, record or runbook
// filter, unless Options say otherwise; sort in any case.
func TestHostedDefaults(t *testing.T) {
	t.Parallel()
	e := setup(t, &Options{DefaultAuditableType: runbooks.TypeStep})
	token := e.bot(t, 1)
	f := writeFixture(t, e)
	e.settle(t)
	byType := func(typ string) []int64 {
		var out []int64
		for _, a := range f.all {
			if typ == "" || a.AuditableType == typ {
				out = append(out, a.ID)
			}
		}
		return out
	}
	asc := func(q string) []int64 { return ids(e.list(t, token, q+"&per_page=100&sort=asc").Data) }
	steps := byType(runbooks.TypeStep)
	require.NotEqual(t, byType(""), steps, "the fixture holds both types")

	cases := []struct {
		query string
		want  []int64
	}{
		{"", steps},
		{"auditable_type=Runbooks::Step", steps},
		{"auditable_type=Runbooks::Runbook", byType(runbooks.TypeRunbook)},
		{"runbook_id=" + f.rbA.ID, e.streamIDs(t, 1, "(auditable_id = ? OR associated_id = ?)", f.rbA.ID, f.rbA.ID)},
		{"auditable_id=" + f.rbA.ID, e.streamIDs(t, 1, "auditable_id = ?", f.rbA.ID)},
	}
	for _, c := range cases {
		got := asc(c.query)
		require.NotEmpty(t, got)
		require.ElementsMatch(t, c.want, got, "?%s", c.query)
	}
	require.Equal(t, asc(""), ids(e.list(t, token, "per_page=100&sort=ASC").Data), "sort is case-insensitive")
	require.Equal(t, ids(e.list(t, token, "per_page=100&sort=desc").Data), ids(e.list(t, token, "per_page=100&sort=Desc").Data))
	require.ElementsMatch(t, byType(""), ids(e.list(t, token, "after_id=0&per_page=100").Data), "the polling stream carries both types")

	all := setup(t, &Options{DefaultAuditableType: AllAuditableTypes})
	token = all.bot(t, 1)
	g := writeFixture(t, all)
	require.ElementsMatch(t, ids(g.all), ids(all.list(t, token, "per_page=100").Data))

	_, err := NewHandler(e.db, &Options{DefaultAuditableType: "Users::User"})
	require.ErrorContains(t, err, "DefaultAuditableType")
}
