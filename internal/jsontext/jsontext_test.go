package jsontext

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBytesTellsStringsFromStructure(t *testing.T) {
	var outside, inside []byte
	Bytes([]byte(`{"a\"[": [1, "}\\"], "b": {}}`), func(c byte, out bool) {
		if out {
			outside = append(outside, c)
		} else {
			inside = append(inside, c)
		}
	})
	if d := cmp.Diff(`{: [1, ], : {}}`, string(outside)); d != "" {
		t.Errorf("outside strings (-want +got):\n%s", d)
	}
	if d := cmp.Diff(`"a\"[""}\\""b"`, string(inside)); d != "" {
		t.Errorf("inside strings (-want +got):\n%s", d)
	}
}
