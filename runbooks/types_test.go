package runbooks

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationRoundTrip(t *testing.T) {
	cases := []struct {
		d    time.Duration
		text string
	}{
		{0, "PT0S"},
		{time.Second, "PT1S"},
		{90 * time.Minute, "PT1H30M"},
		{26*time.Hour + 5*time.Second, "PT26H5S"},
		{1500 * time.Millisecond, "PT1.5S"},
		{time.Nanosecond, "PT0.000000001S"},
		{-15 * time.Minute, "-PT15M"},
	}
	for _, c := range cases {
		if got := Duration(c.d).String(); got != c.text {
			t.Errorf("Duration(%v).String() = %q, want %q", c.d, got, c.text)
		}
		back, err := ParseDuration(c.text)
		if err != nil || time.Duration(back) != c.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.text, time.Duration(back), err, c.d)
		}
	}
}

func TestParseDurationForms(t *testing.T) {
	good := map[string]time.Duration{
		"P1D":      24 * time.Hour,
		"P1W":      7 * 24 * time.Hour,
		"P1DT2H":   26 * time.Hour,
		"PT0.5S":   500 * time.Millisecond,
		"PT2M":     2 * time.Minute,
		"P0D":      0,
		"PT1H1M1S": time.Hour + time.Minute + time.Second,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, time.Duration(got), err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "1S", "P1Y", "P1M", "PT1S1M", "PT1H1H", "P1DT", "PTS", "PT1X", "P1H", "PT1D", "PT1..2S", "P1W2DT3H4"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, time.Duration(d))
		}
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(struct{ D Duration }{Duration(0)})
	if err != nil || string(b) != `{"D":"PT0S"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var v struct{ D Duration }
	if err := json.Unmarshal([]byte(`{"D":"PT1H"}`), &v); err != nil || time.Duration(v.D) != time.Hour {
		t.Fatalf("Unmarshal = %v, %v", time.Duration(v.D), err)
	}
	if err := json.Unmarshal([]byte(`{"D":3600}`), &v); err == nil {
		t.Fatal("Unmarshal of a number succeeded, want an error")
	}
}

func TestJSONNullAndValidity(t *testing.T) {
	var j JSON
	if err := json.Unmarshal([]byte(`null`), &j); err != nil || j != nil {
		t.Fatalf("null → %q, %v", j, err)
	}
	if v, err := JSON(nil).Value(); v != nil || err != nil {
		t.Fatalf("nil JSON Value = %v, %v; want NULL", v, err)
	}
	if _, err := JSON(`{"a":`).Value(); err == nil {
		t.Fatal("invalid JSON stored without error")
	}
	b, err := json.Marshal(map[string]JSON{"c": JSON(`{"a":1}`)})
	if err != nil || string(b) != `{"c":{"a":1}}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
}
