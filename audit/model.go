package audit

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

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
	return slices.ContainsFunc(m.fields, func(f *schema.Field) bool { return f.DBName == col })
}
