package jsontest

import (
	"encoding/json"
	"testing"
)

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestRequireEqual(t *testing.T) {
	same := &recorder{TB: t}
	RequireEqual(same, map[string]any{"a": []any{1, "x"}}, json.RawMessage(`{ "a" : [1,"x"] }`))
	if same.failed {
		t.Fatal("equal documents reported different")
	}
	diff := &recorder{TB: t}
	RequireEqual(diff, map[string]any{"a": 1}, json.RawMessage(`{"a":2}`))
	if !diff.failed {
		t.Fatal("different documents reported equal")
	}
}
