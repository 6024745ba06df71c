package difftest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gormaudit/gormaudit/runbooks"
)

// The value classes of issue 9 (and 12). Ordinary ops draw plain values;
// the value ops draw from these classes half of the time.

var base = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// plainTime is a time at the microsecond, the precision both databases keep.
func plainTime(rng *rand.Rand) time.Time {
	return base.Add(time.Duration(rng.Int64N(1e12)) * time.Microsecond)
}

func plainString(rng *rand.Rand, prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, rng.IntN(1e6))
}

func plainJSON(rng *rand.Rand) runbooks.JSON {
	return runbooks.JSON(fmt.Sprintf(`{"n": %d, "tags": ["a", %q], "nested": {"ok": %t}}`, rng.IntN(100), plainString(rng, "t"), rng.IntN(2) == 0))
}

// exotic values, by class. Each returns the value and its class name.

func exoticString(rng *rand.Rand) (string, string) {
	switch rng.IntN(3) {
	case 0:
		return "bad-\xff\xfe-utf8", "invalid UTF-8 string"
	case 1:
		return "cut-\xe2\x82", "truncated UTF-8 string"
	}
	return "ok-\u00e9\u2603", "valid non-ASCII string"
}

func exoticBytes(rng *rand.Rand) ([]byte, string) {
	switch rng.IntN(3) {
	case 0:
		return []byte{0xff, 0xfe, 0x80, 'x'}, "non-UTF-8 bytes"
	case 1:
		return []byte{'a', 0x00, 'b', 0x00}, "bytes with 0x00"
	}
	return []byte{}, "empty bytes"
}

func exoticJSON(rng *rand.Rand) (runbooks.JSON, string) {
	switch rng.IntN(3) {
	case 0:
		return runbooks.JSON("null"), "JSON null document"
	case 1:
		return nil, "SQL NULL document"
	}
	const depth = 10000
	return runbooks.JSON(strings.Repeat("[", depth) + strings.Repeat("]", depth)), "JSON nested 10000 deep"
}

func exoticTime(rng *rand.Rand) (time.Time, string) {
	return plainTime(rng).Add(time.Duration(1 + rng.IntN(999))), "sub-microsecond time"
}

func exoticFloat(rng *rand.Rand) (float64, string) {
	switch rng.IntN(5) {
	case 0:
		return math.NaN(), "NaN"
	case 1:
		return math.Inf(1), "+Inf"
	case 2:
		return math.Inf(-1), "-Inf"
	case 3:
		return math.Copysign(0, -1), "-0"
	}
	return 1e308, "1e308"
}
