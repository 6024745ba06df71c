package audit

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

var redacted = json.RawMessage(strconv.Quote(RedactedValue))

// encodeValue renders one column value as it appears in audited_changes:
// the value the database stores. NULL is null, times are RFC 3339 in UTC
// (to the microsecond, PostgreSQL's precision, trailing zeros trimmed), a
// JSON column's document is nested JSON, and any other value is what
// encoding/json makes of the value the database driver is given (a
// driver.Valuer's Value). On PostgreSQL the plugin builds the same JSON
// inside the database for creates and deletes (see snapshotSQL), so the two
// must agree.
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
		return encodeTime(x), nil
	case gorm.DeletedAt:
		return encodeNullTime(sql.NullTime(x)), nil
	case sql.NullTime:
		return encodeNullTime(x), nil
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
	case []byte:
		return json.Marshal(string(x))
	}
	return json.Marshal(v)
}

// encodeDocument renders the value of a JSON column as nested JSON.
func encodeDocument(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case json.RawMessage:
		return documentBytes(x)
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return documentBytes(b)
	case driver.Valuer:
		dv, err := x.Value()
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
		return json.Marshal(dv)
	case string:
		return documentBytes([]byte(x))
	case []byte:
		return documentBytes(x)
	}
	return json.Marshal(v) // a struct or map gorm serializes as JSON
}

func documentBytes(b []byte) (json.RawMessage, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return json.RawMessage("null"), nil
	}
	return compact(b)
}

// isJSONColumn reports whether a field's column holds JSON documents.
func isJSONColumn(f *schema.Field) bool {
	return strings.Contains(strings.ToLower(string(f.DataType)), "json")
}

func encodeTime(t time.Time) json.RawMessage {
	return json.RawMessage(`"` + t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) + `"`)
}

func encodeNullTime(t sql.NullTime) json.RawMessage {
	if !t.Valid {
		return json.RawMessage("null")
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

// encodeField renders field f of record rv.
func encodeField(ctx context.Context, f *schema.Field, rv reflect.Value) (json.RawMessage, error) {
	v, _ := f.ValueOf(ctx, rv)
	b, err := encodeValue(v, isJSONColumn(f))
	if err != nil {
		return nil, fmt.Errorf("encode %s.%s: %w", f.Schema.Table, f.DBName, err)
	}
	return b, nil
}

// snapshot is the audited_changes of a create or destroy: every audited
// column with its value.
func (m *model) snapshot(ctx context.Context, rv reflect.Value) (Changes, error) {
	c := make(Changes, len(m.fields))
	for _, f := range m.fields {
		if m.redact[f.DBName] {
			c[f.DBName] = redacted
			continue
		}
		b, err := encodeField(ctx, f, rv)
		if err != nil {
			return nil, err
		}
		c[f.DBName] = b
	}
	return c, nil
}

// diff is the audited_changes of an update: [old, new] for each audited
// column whose value changed. It is empty when nothing audited changed.
func (m *model) diff(ctx context.Context, old, new reflect.Value) (Changes, error) {
	var c Changes
	for _, f := range m.fields {
		ob, err := encodeField(ctx, f, old)
		if err != nil {
			return nil, err
		}
		nb, err := encodeField(ctx, f, new)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(ob, nb) {
			continue
		}
		if c == nil {
			c = Changes{}
		}
		if m.redact[f.DBName] {
			ob, nb = redacted, redacted
		}
		pair := make([]byte, 0, len(ob)+len(nb)+3)
		pair = append(append(append(append(append(pair, '['), ob...), ','), nb...), ']')
		c[f.DBName] = pair
	}
	return c, nil
}

// key renders a primary key or foreign key value as the text stored in
// auditable_id and associated_id. A nil or zero key renders as "".
func key(ctx context.Context, f *schema.Field, rv reflect.Value) string {
	v, zero := f.ValueOf(ctx, rv)
	if zero {
		return ""
	}
	r := reflect.ValueOf(v)
	for r.Kind() == reflect.Pointer {
		if r.IsNil() {
			return ""
		}
		r = r.Elem()
	}
	if vr, ok := r.Interface().(driver.Valuer); ok {
		dv, err := vr.Value()
		if err != nil || dv == nil {
			return ""
		}
		if b, ok := dv.([]byte); ok {
			return string(b)
		}
		return fmt.Sprint(dv)
	}
	return fmt.Sprint(r.Interface())
}

// accountOf returns the record's tenant, 0 when the model has none.
func (m *model) accountOf(ctx context.Context, rv reflect.Value) int64 {
	if m.account == nil {
		return 0
	}
	v, _ := m.account.ValueOf(ctx, rv)
	r := reflect.ValueOf(v)
	for r.Kind() == reflect.Pointer {
		if r.IsNil() {
			return 0
		}
		r = r.Elem()
	}
	switch r.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(r.Uint())
	}
	return 0
}
