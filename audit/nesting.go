package audit

import (
	"errors"
	"fmt"
)

// MaxNestingDepth is how deeply arrays and objects may nest in a value the
// plugin records: a JSON document nested deeper (such as {"a":{"a":...}}
// more than 64 levels down) is refused with a [*ValueError], and nothing is
// written. The limit keeps every audit row readable by the clients of the
// audit log, whose JSON parsers stop at a nesting depth of their own
// (Go's encoding/json at 10,000, Ruby's at 100). Values stored before the
// limit existed are rendered as described in the package documentation.
const MaxNestingDepth = 64

// ErrUnsupportedValue is matched (with errors.Is) by every [*ValueError]:
// a write whose value cannot be recorded exactly was refused.
var ErrUnsupportedValue = errors.New("audit: value cannot be recorded")

// ValueError reports a column value that audited_changes cannot record
// exactly, such as NaN, a string that is not valid UTF-8, a JSON document
// null or one nested deeper than [MaxNestingDepth]. A write is refused with
// it (wrapped in a [*WriteError]) before anything is written, or rolled back
// with its transaction.
type ValueError struct {
	// Column is the column's name, empty when the value was checked on
	// its own (see [CheckNesting]).
	Column string
	// Reason says what is wrong with the value and what to store instead.
	Reason string
}

func (e *ValueError) Error() string {
	if e.Column == "" {
		return "audit: value cannot be recorded: " + e.Reason
	}
	return fmt.Sprintf("audit: value of %s cannot be recorded: %s", e.Column, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupportedValue) true.
func (e *ValueError) Is(target error) bool { return target == ErrUnsupportedValue }

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
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
