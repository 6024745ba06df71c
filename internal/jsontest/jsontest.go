// Package jsontest compares values as JSON documents in tests.
package jsontest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// RequireEqual fails t, printing a go-cmp diff, unless want and got encode
// to the same JSON document: key order, spacing and Go types (a
// json.RawMessage against a map, say) do not matter, values do.
func RequireEqual(t testing.TB, want, got any) {
	t.Helper()
	if d := cmp.Diff(normalize(t, want), normalize(t, got)); d != "" {
		t.Fatalf("JSON mismatch (-want +got):\n%s", d)
	}
}

func normalize(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("jsontest: encode %T: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("jsontest: decode %s: %v", b, err)
	}
	return out
}

// ObjectKeys returns the keys of the JSON object b in the order they appear
// in its text, failing t if b is not an object.
func ObjectKeys(t testing.TB, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("jsontest: %s is not a JSON object", b)
	}
	var keys []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatalf("jsontest: read key of %s: %v", b, err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatalf("jsontest: read value of %s: %v", b, err)
		}
	}
	return keys
}
