package audit

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gormaudit/gormaudit/internal/dialect"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// Changes is the audited_changes column: each audited column's value (create,
// destroy) or its [old, new] pair (update), as JSON. Its text, in the
// database and in JSON, has the keys in PostgreSQL's jsonb order (shorter
// keys first, then bytewise), the order of the hosted endpoint's rows.
type Changes map[string]json.RawMessage

// Value implements driver.Valuer: the changes as a JSON text.
func (c Changes) Value() (driver.Value, error) {
	if c == nil {
		return "{}", nil
	}
	return string(c.appendObject(make([]byte, 0, c.size()), appendStored)), nil
}

// size is the length of c's JSON text when its keys need no escape.
func (c Changes) size() int {
	n := 2
	for k, v := range c {
		n += len(k) + len(v) + 4
	}
	return n
}

// MarshalJSON renders the changes with their keys in jsonb order. A value
// nested deeper than [MaxNestingDepth], which only rows written before the
// limit can hold, is rendered as {"$too_deep": "<its JSON text>"} (see
// [TooDeepKey]; for an update, each side of the pair on its own), so that
// every row can be read by clients whose JSON parsers limit nesting.
func (c Changes) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	return c.appendObject(nil, appendShown), nil
}

// Scan implements sql.Scanner. It reads values nested at any depth.
func (c *Changes) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*c = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("audit: scan audited_changes from %T", src)
	}
	m, err := splitObject(b)
	if err != nil {
		return fmt.Errorf("audit: decode audited_changes: %w", err)
	}
	*c = m
	return nil
}

// GormDBDataType stores the changes as jsonb on PostgreSQL and as JSON text
// elsewhere.
func (Changes) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	return dialect.Of(db).JSONType()
}

// Pair returns the old and new values of an update's column. ok is false when
// the column is absent or is not an [old, new] pair.
func (c Changes) Pair(column string) (old, new json.RawMessage, ok bool) {
	raw, present := c[column]
	if !present {
		return nil, nil, false
	}
	pair, isArray := splitArray(raw) // at any depth
	if !isArray || len(pair) != 2 {
		return nil, nil, false
	}
	return pair[0], pair[1], true
}

// The text form of audited_changes. Rows are read with a splitter of their
// own rather than encoding/json, which refuses anything nested 10,000 levels
// deep: a row holding such a value (stored before MaxNestingDepth was
// enforced) must still be listed, delivered and used by history.

// jsonbOrder sorts keys as PostgreSQL's jsonb stores them, and as the hosted
// endpoint shows them: shorter keys first, then bytewise.
func jsonbOrder(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// sortedKeys returns c's keys in jsonb order.
func (c Changes) sortedKeys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, jsonbOrder)
	return keys
}

// appendObject writes c as a JSON object, keys in jsonb order, each value
// rendered by value.
func (c Changes) appendObject(buf []byte, value func([]byte, json.RawMessage) []byte) []byte {
	buf = append(buf, '{')
	for i, k := range c.sortedKeys() {
		if i > 0 {
			buf = append(buf, ',')
		}
		if quoted, ok := appendPlainString(buf, k); ok {
			buf = quoted
		} else {
			key, _ := json.Marshal(k) // a string always marshals
			buf = append(buf, key...)
		}
		buf = append(buf, ':')
		buf = value(buf, c[k])
	}
	return append(buf, '}')
}

// appendStored writes v as it is stored; a missing value is null.
func appendStored(buf []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(buf, "null"...)
	}
	return append(buf, v...)
}

// TooDeepKey is the only key of the object that stands, in the JSON form of
// audited_changes, for a value nested deeper than [MaxNestingDepth]; its
// value is the stored value's JSON text, as a string.
const TooDeepKey = "$too_deep"

// appendShown writes v for the JSON form of a row: as stored, unless it
// nests deeper than MaxNestingDepth, in which case each element of a
// top-level array (the two sides of an update) that does is written as
// {"$too_deep": "<its JSON text>"}, and so is any other such value. Rows
// holding such values can only come from before MaxNestingDepth was
// enforced; this keeps them readable by every client.
func appendShown(buf []byte, v json.RawMessage) []byte {
	if nesting(v) <= MaxNestingDepth {
		return appendStored(buf, v)
	}
	if elems, ok := splitArray(v); ok {
		buf = append(buf, '[')
		for i, e := range elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendPlaceholder(buf, e)
		}
		return append(buf, ']')
	}
	return appendPlaceholder(buf, v)
}

func appendPlaceholder(buf []byte, v json.RawMessage) []byte {
	if nesting(v) <= MaxNestingDepth {
		return appendStored(buf, v)
	}
	text, _ := json.Marshal(string(v)) // a string always marshals
	return append(append(append(buf, `{"`+TooDeepKey+`":`...), text...), '}')
}

// splitObject reads the JSON object b into its members, keeping each
// value's text as it is (surrounding white space removed). A repeated key
// keeps its last value, as with encoding/json.
func splitObject(b []byte) (map[string]json.RawMessage, error) {
	s := scanner{b: b}
	s.space()
	if !s.take('{') {
		return nil, errNotObject
	}
	out := map[string]json.RawMessage{}
	s.space()
	if s.take('}') {
		return out, s.end()
	}
	for {
		s.space()
		start := s.i
		if err := s.skipString(); err != nil {
			return nil, err
		}
		var key string
		if err := json.Unmarshal(b[start:s.i], &key); err != nil {
			return nil, fmt.Errorf("key at offset %d: %w", start, err)
		}
		s.space()
		if !s.take(':') {
			return nil, s.errorf("':' expected")
		}
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		out[key] = v
		s.space()
		if s.take('}') {
			return out, s.end()
		}
		if !s.take(',') {
			return nil, s.errorf("',' or '}' expected")
		}
	}
}

// splitArray reads the JSON array b into its elements' texts; ok is false
// when b is not a valid array.
func splitArray(b []byte) (elems []json.RawMessage, ok bool) {
	s := scanner{b: b}
	s.space()
	if !s.take('[') {
		return nil, false
	}
	s.space()
	if s.take(']') {
		return nil, s.end() == nil
	}
	for {
		v, err := s.value()
		if err != nil {
			return nil, false
		}
		elems = append(elems, v)
		s.space()
		if s.take(']') {
			return elems, s.end() == nil
		}
		if !s.take(',') {
			return nil, false
		}
	}
}

// scanner reads JSON text without recursion.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{s.i}, args...)...)
}

func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() error {
	s.space()
	if s.i != len(s.b) {
		return s.errorf("text after the end of the object")
	}
	return nil
}

func (s *scanner) skipString() error {
	if !s.take('"') {
		return s.errorf("string expected")
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
			continue
		case '"':
			s.i++
			return nil
		}
		s.i++
	}
	return s.errorf("unterminated string")
}

// value reads one JSON value and returns its text. Values that
// encoding/json can read are validated by it; deeper ones are checked for
// balanced brackets and terminated strings only.
func (s *scanner) value() (json.RawMessage, error) {
	s.space()
	start := s.i
	var closers []byte
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			if err := s.skipString(); err != nil {
				return nil, err
			}
		case c == '[' || c == '{':
			closers = append(closers, c+2) // ']' and '}' follow '[' and '{' by two
			s.i++
		case c == ']' || c == '}':
			if len(closers) == 0 {
				return s.scalar(start)
			}
			if closers[len(closers)-1] != c {
				return nil, s.errorf("mismatched %q", c)
			}
			closers = closers[:len(closers)-1]
			s.i++
		case len(closers) == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return s.scalar(start)
		default:
			s.i++
		}
		if len(closers) == 0 && s.i > start && (c == '"' || c == ']' || c == '}') {
			return s.valid(start)
		}
	}
	if len(closers) > 0 {
		return nil, s.errorf("unterminated value")
	}
	return s.scalar(start)
}

// scalar ends a number, true, false or null that started at start.
func (s *scanner) scalar(start int) (json.RawMessage, error) {
	if s.i == start {
		return nil, s.errorf("value expected")
	}
	return s.valid(start)
}

func (s *scanner) valid(start int) (json.RawMessage, error) {
	v := json.RawMessage(bytes.Clone(s.b[start:s.i]))
	if nesting(v) <= compactDepth && !json.Valid(v) {
		return nil, fmt.Errorf("offset %d: invalid JSON value", start)
	}
	return v, nil
}
