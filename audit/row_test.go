package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/jsontest"
)

func TestAuditJSONAbsentMetadataIsNull(t *testing.T) {
	t.Parallel()
	a := audit.Audit{ID: 7, AccountID: 1, AuditableID: "s", AuditableType: "Runbooks::Step", Action: audit.ActionCreate,
		AuditedChanges: audit.Changes{"position": json.RawMessage("0"), "name": json.RawMessage(`"n"`)},
		Version:        1, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)}
	b, err := json.Marshal(a)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	for _, k := range []string{"associated_id", "associated_type", "comment", "remote_address", "request_uuid"} {
		v, present := got[k]
		require.True(t, present, k)
		require.Nil(t, v, k)
	}
	require.Equal(t, "2026-01-02T03:04:05.006Z", got["created_at"])

	var back audit.Audit
	require.NoError(t, json.Unmarshal(b, &back), "null metadata reads back")
	back.CreatedAt = back.CreatedAt.UTC()
	if d := cmp.Diff(a, back); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}

	a.AssociatedID, a.AssociatedType, a.Comment, a.RemoteAddress, a.RequestUUID = "rb", "Runbooks::Runbook", "why", "10.0.0.1", "3f7a"
	b, err = json.Marshal(a)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back), "string metadata reads back")
	back.CreatedAt = back.CreatedAt.UTC()
	if d := cmp.Diff(a, back); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
}

func TestChangesKeysInJSONBOrder(t *testing.T) {
	t.Parallel()
	c := audit.Changes{}
	for _, k := range []string{"repeats_duration", "name", "b", "config", "aa", "account_id", "repeats_at", "a"} {
		c[k] = json.RawMessage("1")
	}
	want := []string{"a", "b", "aa", "name", "config", "account_id", "repeats_at", "repeats_duration"}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.Equal(t, want, jsontest.ObjectKeys(t, b), "MarshalJSON")
	v, err := c.Value()
	require.NoError(t, err)
	require.Equal(t, want, jsontest.ObjectKeys(t, []byte(v.(string))), "Value, the stored text")
}

func TestChangesScan(t *testing.T) {
	t.Parallel()
	var c audit.Changes
	require.NoError(t, c.Scan(`{"a": [1, {"b": "}]"}], "c\"d": null , "e":"x\\"}`))
	if d := cmp.Diff(audit.Changes{"a": json.RawMessage(`[1, {"b": "}]"}]`), `c"d`: json.RawMessage("null"), "e": json.RawMessage(`"x\\"`)}, c); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	require.NoError(t, c.Scan([]byte(`{}`)))
	require.Empty(t, c)
	for _, bad := range []string{``, `[]`, `{"a":}`, `{"a":1,}`, `{"a":[1}`, `{"a":1} x`, `{"a":tru}`, `{"a":"x}`} {
		require.Error(t, c.Scan(bad), bad)
	}
}
