package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"gorm.io/gorm/schema"
)

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	scannerType     = reflect.TypeFor[sql.Scanner]()
	nullTimeType    = reflect.TypeFor[sql.NullTime]()
)

// decodeField sets field f of record rv from its audited_changes value: the
// inverse of encodeValue. JSON null sets the zero value; times and JSON
// documents are unmarshalled; outside JSON columns, Scanners (sql.Null*,
// durations, other database types) scan the plain value their Value()
// produced, and other types with their own JSON form are unmarshalled.
func decodeField(ctx context.Context, f *schema.Field, rv reflect.Value, raw json.RawMessage) error {
	fv := f.ReflectValueOf(ctx, rv)
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		fv.Set(reflect.Zero(fv.Type()))
		return nil
	}
	if err := decodeValue(ctx, f, rv, fv, raw); err != nil {
		return fmt.Errorf("decode %s.%s from %s: %w", f.Schema.Table, f.DBName, raw, err)
	}
	return nil
}

func decodeValue(ctx context.Context, f *schema.Field, rv, fv reflect.Value, raw json.RawMessage) error {
	base := fv.Type()
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	ptr := reflect.PointerTo(base)
	switch {
	case base == nullTimeType:
		var t *time.Time
		if err := json.Unmarshal(raw, &t); err != nil {
			return err
		}
		return setBase(fv, reflect.ValueOf(sql.NullTime{Time: *t, Valid: true}))
	case ptr.Implements(unmarshalerType) && !(ptr.Implements(scannerType) && !isJSONColumn(f)):
		v := reflect.New(base)
		if err := json.Unmarshal(raw, v.Interface()); err != nil {
			return err
		}
		return setBase(fv, v.Elem())
	case base.Kind() == reflect.Slice && base.Elem().Kind() == reflect.Uint8:
		// encodeValue renders bytes as a JSON string of the bytes, not
		// base64.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		return setBase(fv, reflect.ValueOf([]byte(s)).Convert(base))
	case ptr.Implements(scannerType):
		plain, err := plainValue(raw)
		if err != nil {
			return err
		}
		v := reflect.New(base)
		serr := v.Interface().(sql.Scanner).Scan(plain)
		if serr != nil {
			// A driver value that was a time.Time is rendered as text.
			s, isString := plain.(string)
			t, perr := time.Parse(time.RFC3339Nano, s)
			if !isString || perr != nil {
				return serr
			}
			if err := v.Interface().(sql.Scanner).Scan(t); err != nil {
				return serr
			}
		}
		return setBase(fv, v.Elem())
	}
	v := reflect.New(base)
	if err := json.Unmarshal(raw, v.Interface()); err == nil {
		return setBase(fv, v.Elem())
	}
	// A Valuer whose driver value has another JSON shape than the Go type.
	plain, err := plainValue(raw)
	if err != nil {
		return err
	}
	return f.Set(ctx, rv, plain)
}

// setBase stores v in fv, allocating a pointer when fv is one.
func setBase(fv, v reflect.Value) error {
	if fv.Kind() != reflect.Pointer {
		fv.Set(v)
		return nil
	}
	if fv.Type().Elem().Kind() == reflect.Pointer {
		return fmt.Errorf("pointer to pointer fields are not supported")
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	fv.Set(p)
	return nil
}

// plainValue decodes raw into a value a database driver could have produced:
// integers as int64, other numbers as float64.
func plainValue(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if n, ok := v.(json.Number); ok {
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return i, nil
		}
		return n.Float64()
	}
	return v, nil
}

// canonical renders a JSON value in one form, so that values read back from
// PostgreSQL's jsonb (reordered keys, added spaces) compare equal to the
// values encodeValue produces. Invalid JSON is returned as it is.
func canonical(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// sameJSON reports whether two JSON values are equal once canonical.
func sameJSON(a, b json.RawMessage) bool {
	return bytes.Equal(a, b) || canonical(a) == canonical(b)
}
