package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// seedStep is the step of testdata/seed-step-create.json (a copy of the
// hosted service's example row, shared/reference/seed-step-create.json; see
// testdata/README.txt), with a generated id and runbook.
func seedStep(runbookID string) runbooks.Step {
	return runbooks.Step{
		AccountID: 1,
		RunbookID: runbookID,
		Name:      "Assign A Role",
		Config: runbooks.JSON(`{"role":{"label":"Commander","value":"2e0f57b8-57a6-4fce-b471-10adfcbe2bf6"},` +
			`"user":{"label":"Incident Opener","value":"{\"type\":\"incident_opener\"}"}}`),
		ActionID:  ptr("95facc8b-be6f-4d71-90af-f13c53126de6"),
		Automatic: true,
		Rules:     runbooks.JSON(`[{"field":"severity","op":"eq","value":"SEV1"}]`),
	}
}

var createdAtFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestResponseMatchesSeedRow(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	rb := runbooks.Runbook{AccountID: 1, Name: "Major incident"}
	require.NoError(t, e.db.Create(&rb).Error) // no actor: not the row under test
	step := seedStep(rb.ID)
	require.NoError(t, e.w().Create(&step).Error)

	res := e.get(t, token, "auditable_type=Runbooks::Step")
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "application/json", res.header.Get("Content-Type"))
	var body struct {
		Data       []map[string]any `json:"data"`
		Pagination map[string]any   `json:"pagination"`
	}
	require.NoError(t, json.Unmarshal(res.body, &body))
	require.Len(t, body.Data, 1)
	got := body.Data[0]

	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range got {
			if !yield(k) {
				return
			}
		}
	})
	wantKeys := []string{"account_id", "action", "associated_id", "associated_type", "auditable_id",
		"auditable_type", "audited_changes", "comment", "created_at", "id", "remote_address", "request_uuid", "user_id", "user_type", "version"}
	if d := cmp.Diff(wantKeys, keys); d != "" {
		t.Fatalf("row fields (-want +got):\n%s", d)
	}

	raw, err := os.ReadFile("testdata/seed-step-create.json")
	require.NoError(t, err)
	var seed map[string]any
	require.NoError(t, json.Unmarshal(raw, &seed))

	// The generated values: checked for shape, then taken from the seed.
	require.Greater(t, got["id"], float64(0))
	require.Equal(t, step.ID, got["auditable_id"])
	require.Regexp(t, createdAtFormat, got["created_at"])
	changes := got["audited_changes"].(map[string]any)
	require.Equal(t, rb.ID, changes["runbook_id"])
	seedFields := map[string]any{}
	for k := range seed {
		seedFields[k] = got[k]
	}
	for _, k := range []string{"id", "auditable_id", "created_at"} {
		seedFields[k] = seed[k]
	}
	changes["runbook_id"] = seed["audited_changes"].(map[string]any)["runbook_id"]
	if d := cmp.Diff(seed, seedFields); d != "" {
		t.Fatalf("response row differs from seed-step-create.json (-seed +got):\n%s", d)
	}
	extra := map[string]any{}
	for _, k := range []string{"associated_id", "associated_type", "comment", "remote_address", "request_uuid"} {
		extra[k] = got[k]
	}
	want := map[string]any{"associated_id": rb.ID, "associated_type": runbooks.TypeRunbook, "comment": nil, "remote_address": nil, "request_uuid": nil}
	if d := cmp.Diff(want, extra); d != "" {
		t.Fatalf("extra fields (-want +got):\n%s", d)
	}
	// audited_changes keys come in the reference row's (jsonb) order.
	var texts struct {
		Data []struct {
			AuditedChanges json.RawMessage `json:"audited_changes"`
		} `json:"data"`
		AuditedChanges json.RawMessage `json:"audited_changes"`
	}
	require.NoError(t, json.Unmarshal(res.body, &texts))
	require.NoError(t, json.Unmarshal(raw, &texts))
	if d := cmp.Diff(jsontest.ObjectKeys(t, texts.AuditedChanges), jsontest.ObjectKeys(t, texts.Data[0].AuditedChanges)); d != "" {
		t.Fatalf("audited_changes key order (-seed +got):\n%s", d)
	}
	wantPage := map[string]any{"count": 1.0, "count_exact": true, "page": 1.0, "per_page": 20.0, "items": 1.0, "pages": 1.0, "last": 1.0, "prev": nil, "next": nil}
	if d := cmp.Diff(wantPage, body.Pagination); d != "" {
		t.Fatalf("pagination (-want +got):\n%s", d)
	}
}

func TestOnlyGETAndHEAD(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		res := e.do(t, m, token, "")
		require.Equal(t, http.StatusMethodNotAllowed, res.status, m)
		require.Equal(t, "GET, HEAD", res.header.Get("Allow"), m)
		var body ErrorBody
		require.NoError(t, json.Unmarshal(res.body, &body), m)
		require.Equal(t, "method_not_allowed", body.Code, m)
	}
	require.Equal(t, http.StatusOK, e.get(t, token, "").status)

	// Through a server, HEAD answers GET's status and headers without a body.
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, srv.URL+"/v1/runbook_audits", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", token)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Empty(t, b)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := setup(t, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	good := e.bot(t, 1)
	require.True(t, strings.HasPrefix(good, TokenPrefix))

	revoked, revokedTok, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 1})
	require.NoError(t, err)
	require.NoError(t, RevokeToken(e.ctx, e.db, 1, revokedTok.ID))
	require.NoError(t, RevokeToken(e.ctx, e.db, 1, revokedTok.ID), "revoking twice is fine")
	require.ErrorIs(t, RevokeToken(e.ctx, e.db, 2, revokedTok.ID), ErrTokenNotFound, "another account's token")

	person, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 1, PrincipalType: PrincipalUser, PrincipalID: fixture.ActorID})
	require.NoError(t, err)
	notEnabled, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 7})
	require.NoError(t, err)
	disabled := e.bot(t, 8)
	_, err = audit.DisableAccount(e.ctx, e.db, 8)
	require.NoError(t, err)

	cases := []struct {
		name   string
		header string // Authorization
		status int
		code   string
	}{
		{"none", "", http.StatusUnauthorized, "unauthenticated"},
		{"basic", "Basic dXNlcjpwYXNz", http.StatusUnauthorized, "unauthenticated"},
		{"empty bearer", "Bearer ", http.StatusUnauthorized, "unauthenticated"},
		{"unknown", "Bearer " + TokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized, "unauthenticated"},
		{"tampered", "Bearer " + good[:len(good)-1] + "x", http.StatusUnauthorized, "unauthenticated"},
		{"revoked", "Bearer " + revoked, http.StatusUnauthorized, "unauthenticated"},
		{"not a bot", "Bearer " + person, http.StatusForbidden, "bot_required"},
		{"account never enabled", "Bearer " + notEnabled, http.StatusForbidden, "audit_not_enabled"},
		{"account disabled", "Bearer " + disabled, http.StatusForbidden, "audit_not_enabled"},
		{"good", "Bearer " + good, http.StatusOK, ""},
		{"good, lower-case scheme", "bearer " + good, http.StatusOK, ""},
		{"good, upper-case scheme, spaces", "BEARER    " + good, http.StatusOK, ""},
		{"good, two spaces", "Bearer  " + good, http.StatusOK, ""},
		{"good, raw (API key)", good, http.StatusOK, ""},
		{"raw, unknown", TokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized, "unauthenticated"},
		{"other scheme", "Token " + good, http.StatusUnauthorized, "unauthenticated"},
		{"trailing word", "Bearer " + good + " x", http.StatusUnauthorized, "unauthenticated"},
		{"leading space", " " + good, http.StatusUnauthorized, "unauthenticated"},
	}
	for _, c := range cases {
		r, err := http.NewRequest(http.MethodGet, "/v1/runbook_audits", nil)
		require.NoError(t, err)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		require.Equal(t, c.status, w.Code, "%s: %s", c.name, w.Body)
		if c.status == http.StatusUnauthorized {
			require.True(t, strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer"), c.name)
		}
		if c.code != "" {
			var body ErrorBody
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), c.name)
			require.Equal(t, c.code, body.Code, c.name)
			if c.code == "audit_not_enabled" {
				require.Contains(t, body.Message, "must be enabled", c.name)
			}
		}
	}

	toks, err := ListTokens(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Len(t, toks, 3)
	for _, tok := range toks {
		require.Len(t, tok.Hash, 32, "a SHA-256")
		require.True(t, strings.HasPrefix(good, tok.Hint) || strings.HasPrefix(revoked, tok.Hint) || strings.HasPrefix(person, tok.Hint))
		b, err := json.Marshal(tok)
		require.NoError(t, err)
		require.NotContains(t, string(b), "hash")
	}
	require.NotNil(t, toks[1].RevokedAt)
	require.Nil(t, toks[0].RevokedAt)
	for _, secret := range []string{good, revoked, person, notEnabled, disabled} {
		require.NotContains(t, logs.String(), secret[len(TokenPrefix):], "a token reached the log")
	}
	require.Contains(t, logs.String(), "status=401", "the log records requests")

	// Stored rows hold no plaintext.
	var stored []Token
	require.NoError(t, e.db.Find(&stored).Error)
	for _, s := range stored {
		for _, secret := range []string{good, revoked, person} {
			require.False(t, bytes.Contains(s.Hash, []byte(secret)))
		}
	}
}

func TestCustomAuthenticator(t *testing.T) {
	t.Parallel()
	e := setup(t, &Options{Authenticator: AuthenticatorFunc(func(r *http.Request) (Principal, error) {
		switch r.Header.Get("X-Bot") {
		case "42":
			return Principal{AccountID: 42, ID: "bot-42", Type: PrincipalBot}, nil
		case "":
			return Principal{}, fmt.Errorf("no X-Bot: %w", ErrUnauthenticated)
		}
		return Principal{}, fmt.Errorf("directory unavailable")
	})})
	_, err := audit.EnableAccount(e.ctx, e.db, 42)
	require.NoError(t, err)
	require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: 42, Name: "r"}).Error)
	call := func(bot string) *httptest.ResponseRecorder {
		r, err := http.NewRequest(http.MethodGet, "/runbookaudit", nil)
		require.NoError(t, err)
		if bot != "" {
			r.Header.Set("X-Bot", bot)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return w
	}
	require.Equal(t, http.StatusUnauthorized, call("").Code)
	require.Equal(t, http.StatusInternalServerError, call("x").Code, "an authenticator failure is not the caller's fault")
	w := call("42")
	require.Equal(t, http.StatusOK, w.Code, "%s", w.Body)
	require.Contains(t, w.Body.String(), `"account_id":42`)
}

// knownHistory is the history writeFixture writes to account 1 (and noise
// to account 2) through the audited models, by name.
type knownHistory struct {
	rbA, rbB       runbooks.Runbook
	stepA1, stepA2 runbooks.Step
	stepB1         runbooks.Step
	all            []audit.Audit // account 1, by id
	t0, t1         time.Time     // created_at of the first and of the last row
}

func writeFixture(t *testing.T, e *env) *knownHistory {
	t.Helper()
	alice := audit.WithActor(e.ctx, audit.Actor{ID: "alice", Type: "User"})
	bob := audit.WithActor(e.ctx, audit.Actor{ID: "bob", Type: "User"})
	f := &knownHistory{}
	f.rbA = runbooks.Runbook{AccountID: 1, Name: "A"}
	f.rbB = runbooks.Runbook{AccountID: 1, Name: "B"}
	require.NoError(t, e.db.WithContext(alice).Create(&f.rbA).Error)
	require.NoError(t, e.db.WithContext(bob).Create(&f.rbB).Error)
	f.stepA1 = runbooks.Step{AccountID: 1, RunbookID: f.rbA.ID, Name: "a1"}
	f.stepA2 = runbooks.Step{AccountID: 1, RunbookID: f.rbA.ID, Name: "a2", Position: 1}
	f.stepB1 = runbooks.Step{AccountID: 1, RunbookID: f.rbB.ID, Name: "b1"}
	require.NoError(t, e.db.WithContext(alice).Create(&f.stepA1).Error)
	require.NoError(t, e.db.WithContext(bob).Create(&f.stepA2).Error)
	require.NoError(t, e.db.WithContext(alice).Create(&f.stepB1).Error)
	require.NoError(t, e.db.WithContext(bob).Model(&f.stepA1).Update("name", "a1 renamed").Error)
	require.NoError(t, e.db.WithContext(alice).Model(&f.rbA).Update("description", "changed").Error)
	require.NoError(t, e.db.WithContext(bob).Delete(&f.stepA2).Error)
	// Noise in account 2 with the same actors and a step in the same
	// runbook id space.
	other := runbooks.Runbook{AccountID: 2, Name: "other"}
	require.NoError(t, e.db.WithContext(alice).Create(&other).Error)
	require.NoError(t, e.db.WithContext(alice).Create(&runbooks.Step{AccountID: 2, RunbookID: f.rbA.ID, Name: "foreign"}).Error)

	require.NoError(t, e.db.Where("account_id = ?", 1).Order("id").Find(&f.all).Error)
	require.Len(t, f.all, 8)
	f.t0, f.t1 = f.all[0].CreatedAt, f.all[len(f.all)-1].CreatedAt
	return f
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	f := writeFixture(t, e)
	e.settle(t)

	// want selects the expected rows from account 1's history.
	want := func(keep func(a audit.Audit) bool) []int64 {
		var out []int64
		for _, a := range f.all {
			if keep(a) {
				out = append(out, a.ID)
			}
		}
		return out
	}
	mid := f.all[4].CreatedAt
	cases := []struct {
		query string
		keep  func(a audit.Audit) bool
	}{
		{"", func(audit.Audit) bool { return true }},
		{"auditable_type=Runbooks::Step", func(a audit.Audit) bool { return a.AuditableType == runbooks.TypeStep }},
		{"auditable_type=Runbooks%3A%3ARunbook", func(a audit.Audit) bool { return a.AuditableType == runbooks.TypeRunbook }},
		{"auditable_id=" + f.stepA1.ID, func(a audit.Audit) bool { return a.AuditableID == f.stepA1.ID }},
		{"auditable_id=" + f.stepA1.ID + "&auditable_type=Runbooks::Runbook", func(audit.Audit) bool { return false }},
		{"runbook_id=" + f.rbA.ID, func(a audit.Audit) bool {
			return a.AuditableID == f.rbA.ID || a.AuditableID == f.stepA1.ID || a.AuditableID == f.stepA2.ID
		}},
		{"runbook_id=" + f.rbA.ID + "&auditable_type=Runbooks::Step", func(a audit.Audit) bool {
			return a.AuditableID == f.stepA1.ID || a.AuditableID == f.stepA2.ID
		}},
		{"runbook_id=" + f.rbB.ID + "&action=create", func(a audit.Audit) bool {
			return (a.AuditableID == f.rbB.ID || a.AuditableID == f.stepB1.ID) && a.Action == audit.ActionCreate
		}},
		{"user_id=alice", func(a audit.Audit) bool { return a.UserID == "alice" }},
		{"user_id=nobody", func(audit.Audit) bool { return false }},
		{"action=update", func(a audit.Audit) bool { return a.Action == audit.ActionUpdate }},
		{"action=destroy", func(a audit.Audit) bool { return a.Action == audit.ActionDestroy }},
		{"since=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), func(a audit.Audit) bool { return !a.CreatedAt.Before(mid) }},
		{"until=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), func(a audit.Audit) bool { return a.CreatedAt.Before(mid) }},
		{"since=" + url.QueryEscape(mid.In(time.FixedZone("x", 5*3600)).Format(time.RFC3339Nano)) + "&user_id=bob",
			func(a audit.Audit) bool { return !a.CreatedAt.Before(mid) && a.UserID == "bob" }},
		{"until=2000-01-01T00:00:00Z", func(audit.Audit) bool { return false }},
	}
	for _, c := range cases {
		wantIDs := want(c.keep)
		// Default sort: newest first.
		slices.Reverse(wantIDs)
		got := e.list(t, token, c.query)
		if d := cmp.Diff(wantIDs, ids(got.Data), cmpEmpty); d != "" {
			t.Errorf("GET ?%s (-want +got):\n%s", c.query, d)
		}
		require.Equal(t, int64(len(wantIDs)), got.Pagination.Count, c.query)
		// Ascending, and the same through the polling stream.
		slices.Reverse(wantIDs)
		sep := "&"
		if c.query == "" {
			sep = ""
		}
		got = e.list(t, token, c.query+sep+"sort=asc")
		if d := cmp.Diff(wantIDs, ids(got.Data), cmpEmpty); d != "" {
			t.Errorf("GET ?%s&sort=asc (-want +got):\n%s", c.query, d)
		}
		got = e.list(t, token, c.query+sep+"after_id=0")
		if d := cmp.Diff(wantIDs, ids(got.Data), cmpEmpty); d != "" {
			t.Errorf("GET ?%s&after_id=0 (-want +got):\n%s", c.query, d)
		}
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Comparer(func(a, b []int64) bool { return slices.Equal(a, b) })

func TestPagination(t *testing.T) {
	t.Parallel()
	e := setup(t, &Options{CountLimit: 30})
	token := e.bot(t, 1)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 45 {
		// Pairs of rows share a created_at: id breaks the tie.
		require.NoError(t, e.db.Create(&audit.Audit{AccountID: 1, AuditableType: runbooks.TypeStep, AuditableID: fmt.Sprint("s", i),
			Action: audit.ActionCreate, Version: 1, CreatedAt: base.Add(time.Duration(i/2) * time.Second)}).Error)
	}
	var all []audit.Audit
	require.NoError(t, e.db.Order("created_at DESC, id DESC").Find(&all).Error)

	p1 := e.list(t, token, "")
	require.Equal(t, ids(all[:20]), ids(p1.Data))
	if d := cmp.Diff(&apitype.Pagination{Count: 30, CountExact: false, Page: 1, PerPage: 20, Items: 20, Pages: 2, Last: 2, Next: ptr(2)}, p1.Pagination); d != "" {
		t.Fatalf("page 1, count capped at 30 (-want +got):\n%s", d)
	}
	p3 := e.list(t, token, "page=3")
	require.Equal(t, ids(all[40:]), ids(p3.Data))
	require.Nil(t, p3.Pagination.Next)
	require.Equal(t, 2, *p3.Pagination.Prev)

	exact := e.list(t, token, "per_page=10&page=2&auditable_type=Runbooks::Step&since=2024-01-01T00:00:05Z")
	// created_at ≥ +5s: rows 10..44, 35 rows; capped at 30.
	require.Equal(t, ids(all[10:20]), ids(exact.Data))
	require.Equal(t, int64(30), exact.Pagination.Count)

	small := e.list(t, token, "per_page=10&page=2&since=2024-01-01T00:00:18Z")
	// rows 36..44: 9 rows, page 2 is empty but well-formed.
	require.Empty(t, small.Data)
	if d := cmp.Diff(&apitype.Pagination{Count: 9, CountExact: true, Page: 2, PerPage: 10, Items: 0, Pages: 1, Last: 1, Prev: ptr(1)}, small.Pagination); d != "" {
		t.Fatalf("past the end (-want +got):\n%s", d)
	}
	asc := e.list(t, token, "per_page=100&sort=asc")
	want := ids(all)
	slices.Reverse(want)
	require.Equal(t, want, ids(asc.Data))
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	long := strings.Repeat("a", 256)
	cases := []struct{ query, param string }{
		{"page=0", "page"},
		{"page=-1", "page"},
		{"page=1.5", "page"},
		{"page=abc", "page"},
		{"page=01", "page"},
		{"page=99999999999999999999", "page"},
		{"page=", "page"},
		{"page", "page"},
		{"page=1&page=2", "page"},
		{"per_page=0", "per_page"},
		{"per_page=101", "per_page"},
		{"per_page=+5", "per_page"},
		{"page=5002&per_page=20", "page"},
		{"sort=ascending", "sort"},
		{"auditable_type=Runbooks::Rule", "auditable_type"},
		{"auditable_type=runbooks::step", "auditable_type"},
		{"action=delete", "action"},
		{"since=yesterday", "since"},
		{"since=2024-01-01", "since"},
		{"until=2024-01-01T00:00:00", "until"},
		{"since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z", "until"},
		{"auditable_id=" + long, "auditable_id"},
		{"user_id=" + long, "user_id"},
		{"runbook_id=%00x", "runbook_id"},
		{"user_id=%zz", "user_id"},
		{"%zz=1", "query"},
		{"after_id=-1", "after_id"},
		{"after_id=x", "after_id"},
		{"after_id=0&cursor=c1AAAAAAAAAAAAAAAAAAAAAA", "cursor"},
		{"after_id=0&page=2", "page"},
		{"after_id=0&sort=desc", "sort"},
		{"after_id=0&sort=DESC", "sort"},
		{"cursor=garbage", "cursor"},
		{"cursor=c1AAAA", "cursor"},
		{"after_id=123456", "after_id"}, // no such row
		{"a=" + strings.Repeat("b", maxQueryLen), "query"},
	}
	for _, c := range cases {
		res := e.get(t, token, c.query)
		require.Equal(t, http.StatusBadRequest, res.status, "?%s: %s", clip(c.query), res.body)
		var body ErrorBody
		require.NoError(t, json.Unmarshal(res.body, &body), "?%s", clip(c.query))
		require.Equal(t, "invalid_parameter", body.Code)
		require.Equal(t, c.param, body.Parameter, "?%s: %s", clip(c.query), body.Message)
		require.Contains(t, body.Message, c.param)
		require.NotContains(t, string(res.body), `"data"`, "no partial result")
	}
}

// Unknown parameters are ignored, as the hosted endpoint ignores them,
// unless Options.StrictParameters asks for a 400.
func TestUnknownParameters(t *testing.T) {
	t.Parallel()
	lenient := setup(t, nil)
	token := lenient.bot(t, 1)
	require.NoError(t, lenient.w().Create(&runbooks.Runbook{AccountID: 1, Name: "r"}).Error)
	want := lenient.list(t, token, "")
	require.Len(t, want.Data, 1)
	for _, q := range []string{"foo=1", "Page=1", "foo=1&foo=2", "access_token=" + token, url.QueryEscape(token) + "=x"} {
		got := lenient.list(t, token, q)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("?%s (-without +with):\n%s", clip(q), d)
		}
	}

	strict := setup(t, &Options{StrictParameters: true})
	token = strict.bot(t, 1)
	for q, param := range map[string]string{"foo=1": "foo", "Page=1": "Page", url.QueryEscape(token) + "=x": TokenPrefix + "…(redacted)"} {
		res := strict.get(t, token, q)
		require.Equal(t, http.StatusBadRequest, res.status, "?%s: %s", clip(q), res.body)
		var body ErrorBody
		require.NoError(t, json.Unmarshal(res.body, &body))
		require.Equal(t, param, body.Parameter)
		require.NotContains(t, string(res.body), token[len(TokenPrefix):])
	}
}
