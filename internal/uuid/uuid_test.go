package uuid

import "testing"

func TestNewIsValidVersion4AndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := New()
		if !Valid(id) {
			t.Fatalf("New() = %q is not a valid UUID", id)
		}
		if id[14] != '4' {
			t.Fatalf("New() = %q is not version 4", id)
		}
		if c := id[19]; c != '8' && c != '9' && c != 'a' && c != 'b' {
			t.Fatalf("New() = %q does not have the RFC 4122 variant", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	cases := map[string]bool{
		"84edbbc2-b15c-4d18-94aa-c72073159a74":  true,
		"84EDBBC2-B15C-4D18-94AA-C72073159A74":  true,
		"84edbbc2b15c4d1894aac72073159a74":      false,
		"84edbbc2-b15c-4d18-94aa-c72073159a7":   false,
		"84edbbc2-b15c-4d18-94aa-c72073159a74 ": false,
		"g4edbbc2-b15c-4d18-94aa-c72073159a74":  false,
		"84edbbc2-b15c-4d18-94aa_c72073159a74":  false,
		"":                                      false,
	}
	for in, want := range cases {
		if got := Valid(in); got != want {
			t.Errorf("Valid(%q) = %v, want %v", in, got, want)
		}
	}
}
