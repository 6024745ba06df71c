package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// seedActor is the actor of the reference row.
var seedActor = audit.Actor{ID: "0d2e8479-c00b-44c7-bca4-01e60a3e8035", Type: "User"}

// env is one test's database, audit plugin and handler.
type env struct {
	db  *gorm.DB // audited
	h   *Handler
	ctx context.Context // carries seedActor
}

// setup opens a test database with every table migrated, the audit plugin
// registered and a handler on it (opts may be nil).
func setup(t testing.TB, opts *Options) *env {
	t.Helper()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, runbooks.Migrate(ctx, db))
	require.NoError(t, audit.Migrate(ctx, db))
	require.NoError(t, Migrate(ctx, db))
	require.NoError(t, db.Use(audit.New(audit.Config{Models: runbooks.Models()})))
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
	return &env{db: db, h: h, ctx: audit.WithActor(ctx, seedActor)}
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
	Data       []audit.Audit `json:"data"`
	Pagination *Pagination   `json:"pagination"`
	Cursor     *cursorInfo   `json:"cursor"`
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

// settle waits until every audit row written so far is in the polling
// stream. On PostgreSQL a transaction open anywhere on the server (another
// test, another package's test process) holds rows written after it began
// back from the stream until it ends; tests that expect to poll everything
// they wrote call this first. It waits for that condition, polling it, for
// at most a minute.
func (e *env) settle(t testing.TB) {
	t.Helper()
	if dbtest.Dialect() != dbtest.Postgres {
		return
	}
	var maxTx int64
	require.NoError(t, e.db.Raw(`SELECT COALESCE(MAX(transaction_id), 0) FROM audits`).Scan(&maxTx).Error)
	deadline := time.Now().Add(time.Minute)
	for {
		var xmin int64
		require.NoError(t, e.db.Raw(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin).Error)
		if xmin > maxTx {
			return
		}
		require.True(t, time.Now().Before(deadline), "transaction %d still holds the stream back after a minute", xmin)
		select {
		case <-time.After(5 * time.Millisecond):
		case <-t.Context().Done():
		}
	}
}

func ptr[T any](v T) *T { return &v }
