package audit

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// scanRecords reads rows into fresh values of the schema's model, never into
// the caller's values. It closes rows.
func scanRecords(ctx context.Context, rows *sql.Rows, sch *schema.Schema) ([]reflect.Value, error) {
	got, err := scanGroups(ctx, rows, sch, 1)
	if err != nil {
		return nil, err
	}
	return got[0], nil
}

// scanPairs reads rows whose columns are two whole records side by side,
// such as RETURNING old.*, new.*. It closes rows.
func scanPairs(ctx context.Context, rows *sql.Rows, sch *schema.Schema) (first, second []reflect.Value, err error) {
	got, err := scanGroups(ctx, rows, sch, 2)
	if err != nil {
		return nil, nil, err
	}
	return got[0], got[1], nil
}

// scanGroups reads each row as n records, the columns split into n equal
// consecutive groups, each into a fresh value of the schema's model.
func scanGroups(ctx context.Context, rows *sql.Rows, sch *schema.Schema, n int) (out [][]reflect.Value, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	columns, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if len(columns)%n != 0 {
		return nil, fmt.Errorf("scan %s: %d columns do not split into %d records", sch.Table, len(columns), n)
	}
	fields := make([]*schema.Field, len(columns))
	for i, c := range columns {
		if f := sch.LookUpField(c); f != nil && f.DBName == c {
			fields[i] = f
		}
	}
	width := len(columns) / n
	out = make([][]reflect.Value, n)
	values := make([]any, len(columns))
	for rows.Next() {
		for i, f := range fields {
			if f == nil {
				values[i] = new(any)
			} else {
				values[i] = f.NewValuePool.Get()
			}
		}
		if err := rows.Scan(values...); err != nil {
			return nil, err
		}
		for g := 0; g < n; g++ {
			rv := reflect.New(sch.ModelType).Elem()
			for i := g * width; i < (g+1)*width; i++ {
				f := fields[i]
				if f == nil {
					continue
				}
				if err := f.Set(ctx, rv, values[i]); err != nil {
					return nil, fmt.Errorf("scan %s.%s: %w", sch.Table, f.DBName, err)
				}
				f.NewValuePool.Put(values[i])
			}
			out[g] = append(out[g], rv)
		}
	}
	return out, rows.Err()
}

// records returns the struct values a create statement wrote: one for a
// struct, one per element for a slice or array. ok is false for forms that
// hold no structs, such as maps.
func records(rv reflect.Value) (out []reflect.Value, ok bool) {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Struct:
		return []reflect.Value{rv}, true
	case reflect.Slice, reflect.Array:
		out = make([]reflect.Value, 0, rv.Len())
		for i := 0; i < rv.Len(); i++ {
			elem := rv.Index(i)
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Interface {
				if elem.IsNil() {
					return nil, false
				}
				elem = elem.Elem()
			}
			if elem.Kind() != reflect.Struct {
				return nil, false
			}
			out = append(out, elem)
		}
		return out, true
	}
	return nil, false
}

// hasMissingWhere mirrors gorm's own guard: an update or delete without
// conditions needs AllowGlobalUpdate.
func hasMissingWhere(db *gorm.DB) bool {
	if db.AllowGlobalUpdate {
		return false
	}
	where, ok := db.Statement.Clauses["WHERE"]
	if !ok {
		return true
	}
	if _, softDelete := db.Statement.Clauses["soft_delete_enabled"]; softDelete {
		w, _ := where.Expression.(clause.Where)
		return len(w.Exprs) <= 1
	}
	return false
}

// deliverReturning gives the caller the rows of a RETURNING clause it asked
// for itself, as gorm would have: into the struct for a single row, or as
// the slice's new contents.
func deliverReturning(db *gorm.DB, rows []reflect.Value) {
	target := db.Statement.ReflectValue
	for target.Kind() == reflect.Pointer {
		target = target.Elem()
	}
	switch {
	case target.Kind() == reflect.Struct && target.CanSet() && len(rows) > 0 && target.Type() == rows[0].Type():
		target.Set(rows[len(rows)-1])
	case target.Kind() == reflect.Slice && target.CanSet():
		elemType := target.Type().Elem()
		slice := reflect.MakeSlice(target.Type(), 0, len(rows))
		for _, r := range rows {
			switch {
			case elemType == r.Type():
				slice = reflect.Append(slice, r)
			case elemType.Kind() == reflect.Pointer && elemType.Elem() == r.Type():
				p := reflect.New(r.Type())
				p.Elem().Set(r)
				slice = reflect.Append(slice, p)
			default:
				return
			}
		}
		target.Set(slice)
	}
}
