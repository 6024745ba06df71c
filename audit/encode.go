package audit

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

var redacted = json.RawMessage(strconv.Quote(RedactedValue))

// encodeValue renders one column value as it appears in audited_changes:
// the value the database stores, in a form decodeField turns back into
// exactly that value. NULL is null; times are RFC 3339 in UTC with every
// stored fractional digit (trailing zeros trimmed); a JSON column's document
// is nested JSON; bytes ([]byte, or a driver value that is []byte) are a
// base64 string (standard alphabet, padded), as encoding/json renders them;
// any other value is what encoding/json makes of the value the database
// driver is given (a driver.Valuer's Value). Values that JSON cannot carry
// exactly are refused with a *ValueError: NaN and ±Inf, strings that are not
// valid UTF-8, times outside the years 0001-9999, and a JSON column's
// document null (indistinguishable from SQL NULL) or text that is not JSON.
// On PostgreSQL the plugin builds the same JSON inside the database (see
// internal/pgfuse), so the two must agree.
func encodeValue(v any, jsonColumn bool) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("null"), nil
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return json.RawMessage("null"), nil
		}
		rv = rv.Elem()
	}
	v = rv.Interface()
	switch x := v.(type) {
	case time.Time:
		return encodeTime(x)
	case gorm.DeletedAt:
		return encodeNullTime(sql.NullTime(x))
	case sql.NullTime:
		return encodeNullTime(x)
	}
	if jsonColumn {
		return encodeDocument(v)
	}
	switch x := v.(type) {
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return nil, err
		}
		if _, again := dv.(driver.Valuer); again {
			return nil, fmt.Errorf("%T.Value returned another Valuer", v)
		}
		return encodeValue(dv, false)
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return compact(b)
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := rv.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &ValueError{Reason: fmt.Sprintf("%v has no JSON form; store NULL instead", f)}
		}
	case reflect.String:
		if !utf8.ValidString(rv.String()) {
			return nil, errNotUTF8
		}
	}
	b, err := json.Marshal(v)
	var unsupported *json.UnsupportedValueError
	if errors.As(err, &unsupported) {
		return nil, &ValueError{Reason: unsupported.Error()}
	}
	return b, err
}

// encodeDocument renders the value of a JSON column as nested JSON. The
// document is what the database stores: a driver.Valuer's Value first (so
// that a Value of nil, SQL NULL, is null), then a json.Marshaler's JSON.
func encodeDocument(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case json.RawMessage:
		return documentBytes(x)
	case driver.Valuer:
		dv, err := x.Value()
		if m, isMarshaler := v.(json.Marshaler); err != nil && isMarshaler {
			// A Value that validates with encoding/json fails on a
			// document nested 10,000 levels deep, stored before
			// MaxNestingDepth: read it as its JSON form instead.
			b, merr := m.MarshalJSON()
			if merr != nil {
				return nil, err
			}
			return documentBytes(b)
		}
		if err != nil {
			return nil, err
		}
		switch d := dv.(type) {
		case nil:
			return json.RawMessage("null"), nil
		case string:
			return documentBytes([]byte(d))
		case []byte:
			return documentBytes(d)
		}
		return encodeValue(dv, false)
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return documentBytes(b)
	case string:
		return documentBytes([]byte(x))
	case []byte:
		return documentBytes(x)
	}
	b, err := json.Marshal(v) // a struct or map gorm serializes as JSON
	if err != nil {
		var unsupported *json.UnsupportedValueError
		if errors.As(err, &unsupported) {
			return nil, &ValueError{Reason: unsupported.Error()}
		}
		return nil, err
	}
	return documentBytes(b)
}

// compactDepth bounds the documents documentBytes compacts: encoding/json
// refuses to read anything nested 10,000 levels deep. Deeper documents can
// only have been stored before MaxNestingDepth was enforced; they are kept
// as stored, so that they can still be read, and refused when written.
const compactDepth = 9000

// documentBytes renders the text of a JSON document. Empty text is null;
// the document null is refused, as it would read back as SQL NULL.
func documentBytes(b []byte) (json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return json.RawMessage("null"), nil
	}
	if !utf8.Valid(b) {
		return nil, errNotUTF8
	}
	if nesting(b) > compactDepth {
		return b, nil
	}
	c, err := compact(b)
	if err != nil {
		return nil, &ValueError{Reason: "the JSON column holds text that is not JSON: " + err.Error()}
	}
	if string(c) == "null" {
		return nil, errJSONNull
	}
	return c, nil
}

// isJSONColumn reports whether a field's column holds JSON documents.
func isJSONColumn(f *schema.Field) bool {
	return strings.Contains(strings.ToLower(string(f.DataType)), "json")
}

func encodeTime(t time.Time) (json.RawMessage, error) {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return nil, &ValueError{Reason: fmt.Sprintf("time %v is outside the years 0001-9999 that RFC 3339 can write", t)}
	}
	return json.RawMessage(`"` + t.Format(time.RFC3339Nano) + `"`), nil
}

func encodeNullTime(t sql.NullTime) (json.RawMessage, error) {
	if !t.Valid {
		return json.RawMessage("null"), nil
	}
	return encodeTime(t.Time)
}

func compact(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeField renders field f of record rv. It reads values that are
// already stored (the current row of a history), so it accepts documents
// nested deeper than MaxNestingDepth; recordField refuses them.
func encodeField(ctx context.Context, f *schema.Field, rv reflect.Value) (json.RawMessage, error) {
	v, _ := f.ValueOf(ctx, rv)
	b, err := encodeValue(v, isJSONColumn(f))
	if err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			return nil, &ValueError{Column: f.DBName, Reason: ve.Reason}
		}
		return nil, fmt.Errorf("encode %s.%s: %w", f.Schema.Table, f.DBName, err)
	}
	return b, nil
}

// recordField renders field f of record rv for an audit row being written:
// encodeField, refusing values nested deeper than MaxNestingDepth.
func recordField(ctx context.Context, f *schema.Field, rv reflect.Value) (json.RawMessage, error) {
	b, err := encodeField(ctx, f, rv)
	if err != nil {
		return nil, err
	}
	if d := nesting(b); d > MaxNestingDepth {
		ve := tooDeep(d)
		ve.Column = f.DBName
		return nil, ve
	}
	return b, nil
}

// check reports the first audited column of record rv whose value cannot
// be recorded, as a *ValueError, or another error rendering it. Calling it
// before a write refuses the write before anything reaches the database;
// the values a record's audit rows are built from are checked anyway.
func (m *model) check(ctx context.Context, rv reflect.Value) error {
	for i, f := range m.fields {
		if m.redact[f.DBName] {
			continue
		}
		if v, _ := f.ValueOf(ctx, rv); recordable(v, m.jsonField[i]) {
			continue
		}
		if _, err := recordField(ctx, f, rv); err != nil {
			return err
		}
	}
	return nil
}

// snapshot is the audited_changes of a create or destroy: every audited
// column with its value. Values that cannot be recorded are refused
// (recordField), so a record still holding a document nested deeper than
// MaxNestingDepth, stored before the limit, must be updated before it can
// be hard-deleted.
func (m *model) snapshot(ctx context.Context, rv reflect.Value) (Changes, error) {
	c := make(Changes, len(m.fields))
	var buf []byte // the plain values, side by side
	for i, f := range m.fields {
		if m.redact[f.DBName] {
			c[f.DBName] = redacted
			continue
		}
		if !m.jsonField[i] {
			v, _ := f.ValueOf(ctx, rv)
			start := len(buf)
			var ok bool
			if buf, ok = appendPlain(buf, v); ok {
				c[f.DBName] = json.RawMessage(buf[start:len(buf):len(buf)])
				continue
			}
		}
		b, err := recordField(ctx, f, rv)
		if err != nil {
			return nil, err
		}
		c[f.DBName] = b
	}
	return c, nil
}

// diff is the audited_changes of an update: [old, new] for each audited
// column whose value changed. It is empty when nothing audited changed.
// Only new values are refused for their depth, so that a value stored
// before MaxNestingDepth was enforced can be replaced.
func (m *model) diff(ctx context.Context, old, new reflect.Value) (Changes, error) {
	var c Changes
	for i, f := range m.fields {
		ov, _ := f.ValueOf(ctx, old)
		nv, _ := f.ValueOf(ctx, new)
		if sameValue(ov, nv) {
			// Unchanged, and rendered alike; the value must still be
			// one the encoder accepts, as when both are encoded.
			if recordable(nv, m.jsonField[i]) {
				continue
			}
		}
		pair, err := m.diffField(ctx, f, old, new)
		if err != nil {
			return nil, err
		}
		if pair == nil {
			continue
		}
		if c == nil {
			c = Changes{}
		}
		c[f.DBName] = pair
	}
	return c, nil
}

// diffField renders field f of records old and new, and returns their
// [old, new] pair, or nil when they render alike.
func (m *model) diffField(ctx context.Context, f *schema.Field, old, new reflect.Value) (json.RawMessage, error) {
	ob, err := encodeField(ctx, f, old)
	if err != nil {
		return nil, err
	}
	record := recordField
	if m.redact[f.DBName] {
		record = encodeField // compared, never recorded
	}
	nb, err := record(ctx, f, new)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(ob, nb) {
		return nil, nil
	}
	if m.redact[f.DBName] {
		ob, nb = redacted, redacted
	}
	pair := make([]byte, 0, len(ob)+len(nb)+3)
	pair = append(append(append(append(append(pair, '['), ob...), ','), nb...), ']')
	return pair, nil
}

// sameValue reports true when a and b are certainly the same value, which
// the encoder renders alike: after pointers, of one type and equal as
// booleans, integers, strings, floats of the same bits, byte slices (both
// nil or both not) or times (of one location). False means it cannot tell.
func sameValue(a, b any) bool {
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	for ra.Kind() == reflect.Pointer && rb.Kind() == reflect.Pointer {
		if ra.IsNil() || rb.IsNil() {
			return ra.IsNil() && rb.IsNil()
		}
		ra, rb = ra.Elem(), rb.Elem()
	}
	if !ra.IsValid() || !rb.IsValid() || ra.Type() != rb.Type() {
		return false
	}
	switch ra.Kind() {
	case reflect.Bool:
		return ra.Bool() == rb.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return ra.Int() == rb.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return ra.Uint() == rb.Uint()
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(ra.Float()) == math.Float64bits(rb.Float())
	case reflect.String:
		return ra.String() == rb.String()
	case reflect.Slice:
		return ra.Type().Elem().Kind() == reflect.Uint8 && ra.IsNil() == rb.IsNil() && bytes.Equal(ra.Bytes(), rb.Bytes())
	}
	switch x := ra.Interface().(type) {
	case time.Time:
		return x == rb.Interface().(time.Time)
	case gorm.DeletedAt:
		return x == rb.Interface().(gorm.DeletedAt)
	case sql.NullTime:
		return x == rb.Interface().(sql.NullTime)
	}
	return false
}

var (
	valuerType    = reflect.TypeFor[driver.Valuer]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// plainRendering reports whether encodeValue renders values of type t as
// encoding/json renders the value stored in the database: strings, numbers
// and booleans, and driver.Valuers (encodeValue renders their Value), but
// not other types with their own JSON form.
func plainRendering(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(valuerType) || t.Implements(valuerType) {
		return true
	}
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}
