package audit

import (
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gormaudit/gormaudit/internal/pgfuse"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// model is a registered model resolved against its gorm schema.
type model struct {
	typeName   string
	schema     *schema.Schema
	pk         *schema.Field
	fields     []*schema.Field // audited columns, in schema order
	jsonField  []bool          // jsonField[i]: fields[i] holds JSON documents (isJSONColumn)
	audited    map[string]bool // the audited columns' names
	redact     map[string]bool
	account    *schema.Field // nil: account 0
	assocType  string
	assocField *schema.Field

	// fuse is the SQL of the model's single-statement writes on
	// PostgreSQL (see capture_single.go); nil when the model cannot use
	// them.
	fuse *pgfuse.Capture
	// fusedTexts holds the text of the model's single statements, by
	// fusedShape; fusedCount counts them, up to maxFusedTexts.
	fusedTexts sync.Map
	fusedCount atomic.Int32
	// returned is what a create reads back (defaultsReturned).
	returned     *createReturned
	returnedOnce sync.Once
}

func isInteger(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// pkIn is the condition "primary key in keys".
func (m *model) pkIn(keys []any) clause.Expression {
	return clause.IN{Column: clause.Column{Table: clause.CurrentTable, Name: m.pk.DBName}, Values: keys}
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
	switch x := r.Interface().(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case uint:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
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

func typeName(m *model) string {
	if m == nil {
		return "model"
	}
	return m.schema.ModelType.String()
}

// keyValue turns an auditable_id back into a value of the primary key's kind.
func (m *model) keyValue(id string) (any, error) {
	if isInteger(m.pk.FieldType) {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: %s id %q is not an integer: %w", m.typeName, id, ErrNotFound)
		}
		return n, nil
	}
	return id, nil
}

// deletedAtField returns the model's audited soft-delete column, if any.
func (m *model) deletedAtField() *schema.Field {
	for _, f := range m.fields {
		if f.FieldType == reflect.TypeFor[gorm.DeletedAt]() {
			return f
		}
	}
	return nil
}

// audits reports whether col is one of the model's audited columns.
func (m *model) audits(col string) bool {
	return m.audited[col]
}
