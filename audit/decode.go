package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm/schema"
)

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	scannerType     = reflect.TypeFor[sql.Scanner]()
	nullTimeType    = reflect.TypeFor[sql.NullTime]()
)

// decodeField sets field f of record rv from its audited_changes value: the
// inverse of encodeValue. JSON null sets the zero value; times are parsed;
// a JSON column's document is handed as text to the field's Scanner (which
// reads it as the database driver would hand it, at any nesting depth) or
// else unmarshalled; bytes are decoded from base64; outside JSON columns,
// Scanners (sql.Null*, durations, other database types) scan the plain
// value their Value() produced, and other types with their own JSON form
// are unmarshalled.
func decodeField(ctx context.Context, f *schema.Field, rv reflect.Value, raw json.RawMessage) error {
	fv := f.ReflectValueOf(ctx, rv)
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		fv.Set(reflect.Zero(fv.Type()))
		return nil
	}
	if err := decodeValue(ctx, f, rv, fv, raw); err != nil {
		shown := raw
		if len(shown) > 200 {
			shown = append(shown[:200:200], "..."...)
		}
		return fmt.Errorf("decode %s.%s from %s: %w", f.Schema.Table, f.DBName, shown, err)
	}
	return nil
}

func decodeValue(ctx context.Context, f *schema.Field, rv, fv reflect.Value, raw json.RawMessage) error {
	base := fv.Type()
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	ptr := reflect.PointerTo(base)
	jsonColumn := isJSONColumn(f)
	switch {
	case base == nullTimeType:
		var t *time.Time
		if err := json.Unmarshal(raw, &t); err != nil {
			return err
		}
		return setBase(fv, reflect.ValueOf(sql.NullTime{Time: *t, Valid: true}))
	case jsonColumn && ptr.Implements(scannerType):
		return scanInto(fv, base, bytes.Clone(raw))
	case ptr.Implements(unmarshalerType) && !(ptr.Implements(scannerType) && !jsonColumn):
		v := reflect.New(base)
		if err := json.Unmarshal(raw, v.Interface()); err != nil {
			return err
		}
		return setBase(fv, v.Elem())
	case !jsonColumn && (isBytes(base) || f.DataType == schema.Bytes):
		// encodeValue renders bytes as base64, as encoding/json does.
		var b []byte
		if err := json.Unmarshal(raw, &b); err != nil {
			return err
		}
		if ptr.Implements(scannerType) {
			return scanInto(fv, base, b)
		}
		if !isBytes(base) {
			return fmt.Errorf("cannot set %s from bytes", base)
		}
		return setBase(fv, reflect.ValueOf(b).Convert(base))
	case ptr.Implements(scannerType):
		return scanPlain(fv, base, raw)
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

func isBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

// scanInto scans src into a new value of type base and stores it in fv.
func scanInto(fv reflect.Value, base reflect.Type, src any) error {
	v := reflect.New(base)
	if err := v.Interface().(sql.Scanner).Scan(src); err != nil {
		return err
	}
	return setBase(fv, v.Elem())
}

// scanPlain scans the plain value raw renders (see plainValue) into a new
// value of type base and stores it in fv. A driver value that was a
// time.Time is rendered as text, and scanned as a time if the text does
// not scan.
func scanPlain(fv reflect.Value, base reflect.Type, raw json.RawMessage) error {
	plain, err := plainValue(raw)
	if err != nil {
		return err
	}
	serr := scanInto(fv, base, plain)
	if serr == nil {
		return nil
	}
	s, isString := plain.(string)
	t, perr := time.Parse(time.RFC3339Nano, s)
	if !isString || perr != nil || scanInto(fv, base, t) != nil {
		return serr
	}
	return nil
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
	b, err := json.Marshal(exactNumbers(v))
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// exactNumbers writes every number in v in one form (normNumber), so that
// the same number written differently (1e+308 by Go, 1000…0 by
// PostgreSQL's jsonb, 1.50 and 1.5) compares equal, and numbers that
// differ, however little, do not.
func exactNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return json.Number(normNumber(x.String()))
	case []any:
		for i := range x {
			x[i] = exactNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = exactNumbers(x[k])
		}
	}
	return v
}

// normNumber writes a JSON number literal exactly as digits and a power of
// ten: "-15e-1" for -1.50, "1e308" for 1e+308 and 1000…0, "0" for zero.
func normNumber(lit string) string {
	sign := ""
	if strings.HasPrefix(lit, "-") {
		sign, lit = "-", lit[1:]
	}
	mant, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil {
			return sign + lit
		}
		mant, exp = lit[:i], e
	}
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		exp -= len(mant) - i - 1
		mant = mant[:i] + mant[i+1:]
	}
	mant = strings.TrimLeft(mant, "0")
	for strings.HasSuffix(mant, "0") {
		mant, exp = mant[:len(mant)-1], exp+1
	}
	if mant == "" {
		return "0"
	}
	return sign + mant + "e" + strconv.Itoa(exp)
}

// sameJSON reports whether two JSON values are equal once canonical.
func sameJSON(a, b json.RawMessage) bool {
	return bytes.Equal(a, b) || canonical(a) == canonical(b)
}

// decodeInto sets rv's primary key to id and its audited columns from attrs,
// except redacted columns, columns absent from attrs and those in skip.
func (m *model) decodeInto(ctx context.Context, id string, attrs Changes, rv reflect.Value, skip map[string]bool) error {
	if err := m.setKey(ctx, rv, id); err != nil {
		return err
	}
	for _, f := range m.fields {
		raw, ok := attrs[f.DBName]
		if !ok || m.redact[f.DBName] || skip[f.DBName] {
			continue
		}
		if err := decodeField(ctx, f, rv, raw); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

func (m *model) setKey(ctx context.Context, rv reflect.Value, id string) error {
	v, err := m.keyValue(id)
	if err != nil {
		return err
	}
	if err := m.pk.Set(ctx, rv, v); err != nil {
		return fmt.Errorf("audit: set %s.%s to %q: %w", m.schema.Table, m.pk.DBName, id, err)
	}
	return nil
}
