package audit

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// The encoder's fast paths. encodeValue renders any value through
// encoding/json; most columns hold strings, integers, booleans, times and
// small JSON documents, whose checks and renderings need neither
// encoding/json nor an allocation per value. Each fast path answers only
// when it is sure to agree with encodeValue, and defers to it otherwise, so
// the two cannot disagree on a value (TestFastPathsAgreeWithTheEncoder).

var (
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
)

// recordable reports true when encodeValue(v, jsonColumn) succeeds with a
// value nested no deeper than MaxNestingDepth, as recordField requires. It
// reports false when it cannot tell without encoding: the caller then
// encodes v to learn why, or that it is fine after all.
func recordable(v any, jsonColumn bool) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return true
		}
		rv = rv.Elem()
	}
	switch x := rv.Interface().(type) {
	case time.Time:
		return inRFC3339Years(x)
	case gorm.DeletedAt:
		return !x.Valid || inRFC3339Years(x.Time)
	case sql.NullTime:
		return !x.Valid || inRFC3339Years(x.Time)
	}
	if jsonColumn {
		doc, ok := documentText(rv)
		return ok && recordableDocument(doc)
	}
	if x, ok := rv.Interface().(driver.Valuer); ok {
		dv, err := x.Value()
		if err != nil {
			return false
		}
		if _, again := dv.(driver.Valuer); again {
			return false
		}
		return recordable(dv, false)
	}
	if !plainKind(rv.Type()) {
		return false
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		return !math.IsNaN(f) && !math.IsInf(f, 0)
	case reflect.String:
		return utf8.ValidString(rv.String())
	}
	return true
}

func inRFC3339Years(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// plainKind reports whether encoding/json renders values of type t by their
// kind alone: booleans, integers, floats, strings and byte slices, with no
// method of their own changing their JSON form.
func plainKind(t reflect.Type) bool {
	if t.Implements(marshalerType) || t.Implements(textMarshalerType) ||
		reflect.PointerTo(t).Implements(marshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(marshalerType) &&
			!reflect.PointerTo(t.Elem()).Implements(textMarshalerType)
	}
	return false
}

// documentText is the text of a JSON column's document as encodeDocument
// reads it, for the values it reads without encoding/json: text, bytes, a
// json.RawMessage, or a driver.Valuer whose Value is one of those or nil.
// ok is false for any other value.
func documentText(rv reflect.Value) (doc []byte, ok bool) {
	v := rv.Interface()
	if rv.Type() == rawMessageType {
		return v.(json.RawMessage), true
	}
	if x, isValuer := v.(driver.Valuer); isValuer {
		dv, err := x.Value()
		if err != nil {
			return nil, false
		}
		switch d := dv.(type) {
		case nil:
			return nil, true
		case string:
			return []byte(d), true
		case []byte:
			return d, true
		}
		return nil, false
	}
	if _, isMarshaler := v.(json.Marshaler); isMarshaler {
		return nil, false
	}
	switch d := v.(type) {
	case string:
		return []byte(d), true
	case []byte:
		return d, true
	}
	return nil, false
}

// recordableDocument reports whether documentBytes accepts doc and
// recordField its depth: empty text (SQL NULL), or valid UTF-8 JSON other
// than the document null, nested no deeper than MaxNestingDepth.
func recordableDocument(doc []byte) bool {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return true
	}
	return utf8.Valid(doc) && string(doc) != "null" && json.Valid(doc) && nesting(doc) <= MaxNestingDepth
}

// appendPlain appends encodeValue's rendering of v to buf when v is a
// value it renders without encoding/json and is sure to accept: nil, a
// boolean, an integer, a time, or a string that JSON writes as it is.
// ok is false, and buf unchanged, for any other value.
func appendPlain(buf []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case string:
		return appendPlainString(buf, x)
	case *string:
		if x == nil {
			return append(buf, "null"...), true
		}
		return appendPlainString(buf, *x)
	case bool:
		return strconv.AppendBool(buf, x), true
	case int:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int64:
		return strconv.AppendInt(buf, x, 10), true
	case int32:
		return strconv.AppendInt(buf, int64(x), 10), true
	case uint:
		return strconv.AppendUint(buf, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(buf, x, 10), true
	case time.Time:
		return appendPlainTime(buf, x)
	case *time.Time:
		if x == nil {
			return append(buf, "null"...), true
		}
		return appendPlainTime(buf, *x)
	case gorm.DeletedAt:
		if !x.Valid {
			return append(buf, "null"...), true
		}
		return appendPlainTime(buf, x.Time)
	}
	return buf, false
}

func appendPlainTime(buf []byte, t time.Time) ([]byte, bool) {
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return buf, false
	}
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"'), true
}

// appendPlainString appends s quoted when encoding/json writes it with no
// escape: printable ASCII other than '"', '\\' and the characters it
// escapes for HTML ('<', '>', '&').
func appendPlainString(buf []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return buf, false
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), true
}
