package client

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
)

// TestRowReadsAuditJSON encodes audit rows with audit.Audit's MarshalJSON,
// the server's row format, and requires that Row reads every field the
// format has and reads each one as audit.Audit's own UnmarshalJSON does.
func TestRowReadsAuditJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2022, 4, 26, 19, 34, 32, 889_000_000, time.UTC)
	rows := map[string]audit.Audit{
		"step create, every field": {
			ID: 51, AccountID: 7, AuditableID: "s1", AuditableType: "Runbooks::Step",
			AssociatedID: "r1", AssociatedType: "Runbooks::Runbook", UserID: "u1", UserType: "User",
			Action: audit.ActionCreate, AuditedChanges: audit.Changes{"name": json.RawMessage(`"Page the DBA"`), "position": json.RawMessage(`0`)},
			Version: 1, Comment: "why", RemoteAddress: "10.0.0.1", RequestUUID: "5b8a", CreatedAt: at, TransactionID: 99,
		},
		"update, null metadata, nested values": {
			ID: 52, AccountID: 7, AuditableID: "r1", AuditableType: "Runbooks::Runbook", Action: audit.ActionUpdate,
			AuditedChanges: audit.Changes{"config": json.RawMessage(`[{"a":[1,{"b":null}]},{"a":[]}]`), "name": json.RawMessage(`["x","y"]`)},
			Version:        2, CreatedAt: at.Add(time.Millisecond),
		},
		"destroy, no changes": {ID: 53, AuditableID: "r1", AuditableType: "Runbooks::Runbook", Action: audit.ActionDestroy,
			AuditedChanges: audit.Changes{}, Version: 3, CreatedAt: at.In(time.FixedZone("CEST", 2*3600))},
	}
	for name, a := range rows {
		b, err := json.Marshal(a)
		require.NoError(t, err, name)

		var keys map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &keys), name)
		if d := cmp.Diff(slices.Sorted(maps.Keys(keys)), jsonFields(reflect.TypeFor[Row]())); d != "" {
			t.Fatalf("%s: the row format's fields (-audit +client.Row):\n%s", name, d)
		}

		var want audit.Audit
		require.NoError(t, json.Unmarshal(b, &want), name)
		var got Row
		require.NoError(t, json.Unmarshal(b, &got), name)
		if d := cmp.Diff(fromAudit(want), got); d != "" {
			t.Fatalf("%s: %s\nRow differs from audit.Audit (-audit +client):\n%s", name, b, d)
		}
	}
}

// fromAudit copies an audit.Audit decoded from JSON into a Row.
func fromAudit(a audit.Audit) Row {
	changes := map[string]json.RawMessage(a.AuditedChanges)
	return Row{
		ID: a.ID, AccountID: a.AccountID, AuditableID: a.AuditableID, AuditableType: a.AuditableType,
		AssociatedID: a.AssociatedID, AssociatedType: a.AssociatedType, UserID: a.UserID, UserType: a.UserType,
		Action: Action(a.Action), AuditedChanges: changes, Version: a.Version, Comment: a.Comment,
		RemoteAddress: a.RemoteAddress, RequestUUID: a.RequestUUID, CreatedAt: a.CreatedAt,
	}
}

// jsonFields returns the JSON names of a struct's fields, sorted.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
