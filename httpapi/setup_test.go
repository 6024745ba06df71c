package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"

	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/httpapi/client"
)

// env is one test's database, audit plugin and handler.
type env struct {
	db  *gorm.DB // audited
	h   *Handler
	ctx context.Context // carries fixture.Actor
}

// setup opens a test database with every table migrated, the audit plugin
// registered and a handler on it (opts may be nil).
func setup(t testing.TB, opts *Options) *env {
	t.Helper()
	db, ctx := apitest.Open(t, Migrate)
	if opts == nil {
		opts = &Options{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DefaultAuditableType == "" {
		// Most tests read both types; TestHostedDefaults checks the
		// hosted default, Runbooks::Step.
		opts.DefaultAuditableType = AllAuditableTypes
	}
	h, err := NewHandler(db, opts)
	require.NoError(t, err)
	return &env{db: db, h: h, ctx: ctx}
}

// bot enables the account and returns a new bot token for it.
func (e *env) bot(t testing.TB, accountID int64) string {
	t.Helper()
	_, err := audit.EnableAccount(e.ctx, e.db, accountID)
	require.NoError(t, err)
	tok, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: accountID, Name: "test bot"})
	require.NoError(t, err)
	return tok
}

// response is one recorded response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get calls the handler directly with rawQuery and token ("" for none).
func (e *env) get(t testing.TB, token, rawQuery string) response {
	t.Helper()
	return e.do(t, http.MethodGet, token, rawQuery)
}

func (e *env) do(t testing.TB, method, token, rawQuery string) response {
	t.Helper()
	r := httptest.NewRequest(method, "/v1/runbook_audits?"+rawQuery, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// wireList is the 200 body as a client decodes it.
type wireList struct {
	Data       []audit.Audit       `json:"data"`
	Pagination *apitype.Pagination `json:"pagination"`
	Cursor     *apitype.Cursor     `json:"cursor"`
}

// list calls the handler and requires a 200.
func (e *env) list(t testing.TB, token, rawQuery string) wireList {
	t.Helper()
	res := e.get(t, token, rawQuery)
	require.Equal(t, http.StatusOK, res.status, "GET ?%s: %s", rawQuery, res.body)
	var out wireList
	require.NoError(t, json.Unmarshal(res.body, &out))
	return out
}

// ids returns the rows' ids in order.
func ids(rows []audit.Audit) []int64 {
	out := make([]int64, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// w returns the audited database bound to the env's actor.
func (e *env) w() *gorm.DB { return e.db.WithContext(e.ctx) }

// settle waits until every row written so far is in the polling stream
// (see apitest.Settle).
func (e *env) settle(t testing.TB) { apitest.Settle(t, e.db) }

// streamIDs returns the ids of the account's rows that match where, in the
// polling stream's order.
func (e *env) streamIDs(t testing.TB, accountID int64, where string, args ...any) []int64 {
	t.Helper()
	return apitest.StreamIDs(t, e.db, accountID, where, args...)
}

// client returns a Go client of the env's handler, served over HTTP, with
// token.
func (e *env) client(t testing.TB, token string) *client.Client {
	t.Helper()
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/v1/runbook_audits", token, &client.Options{HTTPClient: srv.Client()})
	require.NoError(t, err)
	return c
}

func ptr[T any](v T) *T { return &v }
