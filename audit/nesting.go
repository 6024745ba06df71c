package audit

import (
	"fmt"

	"github.com/gormaudit/gormaudit/internal/jsontext"
)

// MaxNestingDepth is how deeply arrays and objects may nest in a value the
// plugin records: a JSON document nested deeper (such as {"a":{"a":...}}
// more than 64 levels down) is refused with a [*ValueError], and nothing is
// written. The limit keeps every audit row readable by the clients of the
// audit log, whose JSON parsers stop at a nesting depth of their own
// (Go's encoding/json at 10,000, Ruby's at 100). Values stored before the
// limit existed are rendered as described in the package documentation.
const MaxNestingDepth = 64

// CheckNesting reports a [*ValueError] when the JSON text doc nests arrays
// and objects deeper than [MaxNestingDepth], the depth beyond which the
// plugin refuses to record a document. It does not otherwise validate doc,
// and it has no depth limit of its own, so a service can call it on a
// request body before decoding it and answer 422 instead of failing later.
func CheckNesting(doc []byte) error {
	if d := nesting(doc); d > MaxNestingDepth {
		return tooDeep(d)
	}
	return nil
}

func tooDeep(depth int) *ValueError {
	return &ValueError{Reason: fmt.Sprintf("JSON nested %d levels deep, deeper than the maximum of %d (audit.MaxNestingDepth)", depth, MaxNestingDepth)}
}

// nesting returns how deeply arrays and objects nest in the JSON text b: 0
// for a scalar, 1 for [1] or {}, 2 for [[1]]. Brackets inside strings do
// not count. It reads b once, without recursion, whatever its depth.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	jsontext.Bytes(b, func(c byte, outside bool) {
		switch {
		case !outside:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	})
	return deepest
}
