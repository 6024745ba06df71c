package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

// inProcess serves the example's API on a test database seeded like the
// real service, plus a second account's user.
func inProcess(t *testing.T) (srv *httptest.Server, db *gorm.DB, user, otherUser string) {
	t.Helper()
	ctx := context.Background()
	db = fixture.Open(t, &fixture.Options{
		Config:     audit.Config{EnabledAccountsOnly: true},
		Migrations: []fixture.Migration{httpapi.Migrate},
	}).DB
	d, err := seed(ctx, db, "", "")
	require.NoError(t, err)
	otherUser, _, err = httpapi.IssueToken(ctx, db, httpapi.TokenSpec{AccountID: 2, PrincipalType: httpapi.PrincipalUser})
	require.NoError(t, err)
	h, err := newServer(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, db, d.userToken, otherUser
}

func TestBadInputGetsA4xxJSONError(t *testing.T) {
	srv, db, user, other := inProcess(t)
	var before int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&before).Error)
	rb := "/v1/runbooks/" + demoRunbookID
	step := rb + "/steps/" + demoStepID
	cases := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"not JSON", "PATCH", step, user, `{"name":`, 400},
		{"unknown field", "PATCH", step, user, `{"nmae":"x"}`, 400},
		{"wrong type", "PATCH", step, user, `{"position":"first"}`, 400},
		{"negative position", "PATCH", step, user, `{"position":-1}`, 400},
		{"empty name", "POST", rb + "/steps", user, `{"name":"  "}`, 400},
		{"config not an object", "PATCH", step, user, `{"config":"{}"}`, 400},
		{"bad duration", "PATCH", step, user, `{"delay_duration":"5 minutes"}`, 400},
		{"bad action id", "PATCH", step, user, `{"action_id":"nope"}`, 400},
		{"two bodies", "PATCH", step, user, `{"name":"a"}{"name":"b"}`, 400},
		{"body over 1 MiB", "PATCH", step, user, `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
		{"runbook id not a UUID", "GET", "/v1/runbooks/1%20OR%201=1", user, ``, 404},
		{"unknown runbook", "GET", "/v1/runbooks/00000000-0000-4000-8000-000000000000", user, ``, 404},
		{"another account's runbook", "GET", rb, other, ``, 404},
		{"another account's step", "PATCH", step, other, `{"name":"mine now"}`, 404},
		{"revert needs a point", "POST", rb + "/revert", user, `{}`, 400},
		{"revert with two points", "POST", rb + "/revert", user, `{"runbook_version":1,"at":"2026-01-01T00:00:00Z"}`, 400},
		{"revert to an ambiguous version", "POST", rb + "/revert", user, `{"version":1}`, 400},
		{"revert a runbook to a step version", "POST", rb + "/revert", user, `{"step_version":1}`, 400},
		{"revert to a bad time", "POST", rb + "/revert", user, `{"at":"yesterday"}`, 400},
		{"revert to audit row 0", "POST", rb + "/revert", user, `{"audit_id":0}`, 400},
		{"revert beyond history", "POST", rb + "/revert", user, `{"runbook_version":99}`, 422},
		{"revert to another runbook's audit row", "POST", rb + "/revert", user, `{"audit_id":999999}`, 422},
		{"revert another account's runbook", "POST", rb + "/revert", other, `{"runbook_version":1}`, 404},
		{"revert a step to a runbook version", "POST", step + "/revert", user, `{"runbook_version":1}`, 400},
		{"revert a step beyond history", "POST", step + "/revert", user, `{"step_version":99}`, 422},
		{"revert a step to the runbook's audit row", "POST", step + "/revert", user, `{"audit_id":1}`, 422},
		{"revert another account's step", "POST", step + "/revert", other, `{"step_version":1}`, 404},
		{"revert a step of another runbook", "POST", "/v1/runbooks/00000000-0000-4000-8000-000000000000/steps/" + demoStepID + "/revert", user, `{"step_version":1}`, 404},
		{"config nested too deep", "PATCH", step, user, `{"config":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`, 422},
		{"no token", "GET", rb, "", ``, 401},
		{"unknown route", "GET", "/v1/nope", user, ``, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			require.NoError(t, err)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, c.status, resp.StatusCode, "body: %s", body)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Contains(t, string(body), `"error"`)
		})
	}

	// None of it wrote anything.
	var after int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&after).Error)
	require.Equal(t, before, after)
}

// TestOpenAPIOnEveryMount requires the audit endpoint's OpenAPI document
// beside both of its paths.
func TestOpenAPIOnEveryMount(t *testing.T) {
	srv, _, _, _ := inProcess(t)
	for _, p := range []string{"/v1/runbook_audits/openapi.json", "/runbookaudit/openapi.json"} {
		resp, err := srv.Client().Get(srv.URL + p)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.JSONEq(t, string(httpapi.OpenAPI()), string(b), p)
	}
}
