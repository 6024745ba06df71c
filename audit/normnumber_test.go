package audit

import (
	"strings"
	"testing"
)

// Numbers are compared by value, however each database writes them, and
// never equal to a string.
func TestSameJSONComparesNumbersExactly(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"1e+308", "1" + strings.Repeat("0", 308), true},
		{"1.50", "1.5", true},
		{"-0.0", "0", true},
		{"100", "1e2", true},
		{"1e308", "1E+308", true},
		{"12", "1.2e1", true},
		{"123.456e-2", "1.23456", true},
		{"0.1", "0.10000000000000001", false},
		{"1e308", "1e307", false},
		{"-1", "1", false},
		{`{"a":[1e+308,"1"]}`, `{"a": [1` + strings.Repeat("0", 308) + `, "1"]}`, true},
		{`1`, `"1"`, false},
	} {
		if got := sameJSON([]byte(c.a), []byte(c.b)); got != c.same {
			t.Errorf("sameJSON(%s, %s) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}
