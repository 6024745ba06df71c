package main

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestREADMEExamples sends the README's requests, in its order, to a fresh
// seeded database, and checks what each answers.
func TestREADMEExamples(t *testing.T) {
	srv, db, user, _ := inProcess(t)
	bot, _, err := httpapi.IssueToken(t.Context(), db, httpapi.TokenSpec{AccountID: demoAccount, PrincipalType: httpapi.PrincipalBot})
	require.NoError(t, err)
	rb := "/v1/runbooks/" + demoRunbookID
	step := rb + "/steps/" + demoStepID
	do := func(method, path, auth, body string, out any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s %s: %s", method, path, body, raw)
		if out != nil {
			require.NoError(t, json.Unmarshal(raw, out))
		}
	}

	// The seed's rows are ids 1 to 6, the last its reorder of the steps.
	var seeded []audit.Audit
	require.NoError(t, db.Order("id").Find(&seeded).Error)
	require.Len(t, seeded, 6)
	require.Equal(t, int64(6), seeded[5].ID)

	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Format("2006-01-02T15:04:05.000Z") // AT=$(date …)
	for !time.Now().UTC().Truncate(time.Millisecond).After(now) {
		// The edit below must fall in a later millisecond than AT, as it
		// does when a person types it.
		runtime.Gosched()
	}
	do("GET", rb, "Bearer "+user, "", nil)
	do("PATCH", step, "Bearer "+user, `{"name": "Assign the Incident Commander", "delay_duration": "PT2M"}`, nil)
	var page struct{ Data []audit.Audit }
	do("GET", "/v1/runbook_audits?runbook_id="+demoRunbookID+"&sort=desc&per_page=5", bot, "", &page)
	require.Equal(t, demoStepID, page.Data[0].AuditableID)

	type record struct {
		Type    string                     `json:"auditable_type"`
		ID      string                     `json:"auditable_id"`
		State   string                     `json:"state"`
		Action  string                     `json:"action"`
		Changes map[string]json.RawMessage `json:"changes"`
	}
	var answer struct {
		DryRun  bool     `json:"dry_run"`
		Records []record `json:"records"`
	}
	undo := map[string]json.RawMessage{
		"name":           json.RawMessage(`["Assign the Incident Commander","Assign A Role"]`),
		"delay_duration": json.RawMessage(`["PT2M","PT0S"]`),
	}
	want := []record{{Type: runbooks.TypeStep, ID: demoStepID, State: "present", Action: "update", Changes: undo}}
	for _, preview := range []struct{ path, body string }{
		{rb + "/revert", `{"audit_id": 6, "dry_run": true}`},
		{step + "/revert", `{"step_version": 1, "dry_run": true}`},
	} {
		do("POST", preview.path, "Bearer "+user, preview.body, &answer)
		require.True(t, answer.DryRun)
		if d := cmp.Diff(want, answer.Records, cmp.Comparer(jsonEqual)); d != "" {
			t.Fatalf("%s %s (-want +got):\n%s", preview.path, preview.body, d)
		}
	}
	do("POST", rb+"/revert", "Bearer "+user, `{"at": "`+at+`"}`, &answer)
	require.False(t, answer.DryRun)
	if d := cmp.Diff(want, answer.Records, cmp.Comparer(jsonEqual)); d != "" {
		t.Fatalf("revert to the moment before the edit (-want +got):\n%s", d)
	}
	var s runbooks.Step
	require.NoError(t, db.Take(&s, "id = ?", demoStepID).Error)
	require.Equal(t, "Assign A Role", s.Name)
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
}
