package audit_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// seedRow is testdata/seed-step-create.json, a copy of the hosted service's
// example row (shared/reference/seed-step-create.json, see
// testdata/README.txt): the golden output for creating its step.
type seedRow struct {
	ID             int64          `json:"id"`
	AccountID      int64          `json:"account_id"`
	AuditableID    string         `json:"auditable_id"`
	AuditableType  string         `json:"auditable_type"`
	UserID         string         `json:"user_id"`
	UserType       string         `json:"user_type"`
	Action         string         `json:"action"`
	AuditedChanges map[string]any `json:"audited_changes"`
	Version        int            `json:"version"`
	CreatedAt      string         `json:"created_at"`
}

func readSeed(t *testing.T) seedRow {
	t.Helper()
	b, err := os.ReadFile("testdata/seed-step-create.json")
	require.NoError(t, err)
	var s seedRow
	require.NoError(t, json.Unmarshal(b, &s))
	return s
}

// seedStep is the step of the reference row, field for field.
func seedStep() runbooks.Step {
	return runbooks.Step{
		ID:        "84edbbc2-b15c-4d18-94aa-c72073159a74",
		AccountID: 1,
		RunbookID: "69e62138-e673-4c21-b4fb-caf775308acc",
		Name:      "Assign A Role",
		Config: runbooks.JSON(`{"role":{"label":"Commander","value":"2e0f57b8-57a6-4fce-b471-10adfcbe2bf6"},` +
			`"user":{"label":"Incident Opener","value":"{\"type\":\"incident_opener\"}"}}`),
		Repeats:       false,
		Position:      0,
		ActionID:      ptr("95facc8b-be6f-4d71-90af-f13c53126de6"),
		Automatic:     true,
		DelayDuration: 0,
		Rules:         runbooks.JSON(`[{"field":"severity","op":"eq","value":"SEV1"}]`),
		Conditions:    runbooks.JSON(`{"all":true}`),
	}
}

func TestGoldenStepCreate(t *testing.T) {
	t.Parallel()
	seed := readSeed(t)
	b := setup(t, audit.Config{})
	require.NoError(t, b.db.Create(&runbooks.Runbook{ID: "69e62138-e673-4c21-b4fb-caf775308acc", AccountID: 1, Name: "Major incident"}).Error)

	step := seedStep()
	require.NoError(t, b.w().Create(&step).Error)

	rows := b.auditsOf(t, runbooks.TypeStep, step.ID)
	require.Len(t, rows, 1)
	got := rows[0]
	want := seedRow{
		AccountID: seed.AccountID, AuditableID: seed.AuditableID, AuditableType: seed.AuditableType,
		UserID: seed.UserID, UserType: seed.UserType, Action: seed.Action,
		AuditedChanges: seed.AuditedChanges, Version: seed.Version,
	}
	gotRow := seedRow{
		AccountID: got.AccountID, AuditableID: got.AuditableID, AuditableType: got.AuditableType,
		UserID: got.UserID, UserType: got.UserType, Action: string(got.Action),
		AuditedChanges: decoded(t, got.AuditedChanges), Version: got.Version,
	}
	if d := cmp.Diff(want, gotRow); d != "" {
		t.Fatalf("audit row differs from seed-step-create.json (-seed +got):\n%s", d)
	}
	// The keys come in the reference row's order (PostgreSQL's jsonb order).
	raw, err := os.ReadFile("testdata/seed-step-create.json")
	require.NoError(t, err)
	var seedText struct {
		AuditedChanges json.RawMessage `json:"audited_changes"`
	}
	require.NoError(t, json.Unmarshal(raw, &seedText))
	gotText, err := json.Marshal(got.AuditedChanges)
	require.NoError(t, err)
	if d := cmp.Diff(jsontest.ObjectKeys(t, seedText.AuditedChanges), jsontest.ObjectKeys(t, gotText)); d != "" {
		t.Fatalf("audited_changes key order (-seed +got):\n%s", d)
	}
	require.Equal(t, runbooks.TypeRunbook, got.AssociatedType)
	require.Equal(t, step.RunbookID, got.AssociatedID)
	require.NotContains(t, got.AuditedChanges, "rules")
	require.NotContains(t, got.AuditedChanges, "conditions")

	// delay_duration is stored as the ISO 8601 text, not a number.
	var stored string
	require.NoError(t, b.db.Raw(`SELECT delay_duration FROM steps WHERE id = ?`, step.ID).Scan(&stored).Error)
	require.Equal(t, "PT0S", stored)
}
