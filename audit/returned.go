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
	got, _, err := scanGroups(ctx, rows, sch, 1)
	if err != nil {
		return nil, err
	}
	return got[0], nil
}

// scanWritten reads the rows an INSERT returned, with, when the statement
// asked for it as its last column, PostgreSQL's flag telling an inserted
// row (true) from an upsert's updated one; inserted is nil otherwise.
func scanWritten(ctx context.Context, rows *sql.Rows, sch *schema.Schema) (written []reflect.Value, inserted []bool, err error) {
	got, inserted, err := scanGroups(ctx, rows, sch, 1)
	if err != nil {
		return nil, nil, err
	}
	return got[0], inserted, nil
}

// scanPairs reads rows whose columns are two whole records side by side,
// such as RETURNING old.*, new.*. It closes rows.
func scanPairs(ctx context.Context, rows *sql.Rows, sch *schema.Schema) (first, second []reflect.Value, err error) {
	got, _, err := scanGroups(ctx, rows, sch, 2)
	if err != nil {
		return nil, nil, err
	}
	return got[0], got[1], nil
}

// scanGroups reads each row as n records, the columns split into n equal
// consecutive groups, each into a fresh value of the schema's model. A
// last column named conflictColumn is read into flags instead.
func scanGroups(ctx context.Context, rows *sql.Rows, sch *schema.Schema, n int) (out [][]reflect.Value, flags []bool, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	columns, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	var flag *bool
	if len(columns) > 0 && columns[len(columns)-1] == conflictColumn {
		columns, flag = columns[:len(columns)-1], new(bool)
	}
	if len(columns)%n != 0 {
		return nil, nil, fmt.Errorf("scan %s: %d columns do not split into %d records", sch.Table, len(columns), n)
	}
	fields := make([]*schema.Field, len(columns))
	for i, c := range columns {
		if f := sch.LookUpField(c); f != nil && f.DBName == c {
			fields[i] = f
		}
	}
	width := len(columns) / n
	out = make([][]reflect.Value, n)
	values := make([]any, len(columns), len(columns)+1)
	if flag != nil {
		values = append(values, flag)
	}
	for rows.Next() {
		for i, f := range fields {
			if f == nil {
				values[i] = new(any)
			} else {
				values[i] = f.NewValuePool.Get()
			}
		}
		if err := rows.Scan(values...); err != nil {
			return nil, nil, err
		}
		if flag != nil {
			flags = append(flags, *flag)
		}
		for g := 0; g < n; g++ {
			rv := reflect.New(sch.ModelType).Elem()
			for i := g * width; i < (g+1)*width; i++ {
				f := fields[i]
				if f == nil {
					continue
				}
				if err := f.Set(ctx, rv, values[i]); err != nil {
					return nil, nil, fmt.Errorf("scan %s.%s: %w", sch.Table, f.DBName, err)
				}
				f.NewValuePool.Put(values[i])
			}
			out[g] = append(out[g], rv)
		}
	}
	return out, flags, rows.Err()
}

// deliverReturning gives the caller the rows of a RETURNING clause it asked
// for itself, as gorm would have: the clause's columns (every column for
// RETURNING *) into the struct for a single row, or into the slice's
// elements, matched by position.
func deliverReturning(db *gorm.DB, rows []reflect.Value, c clause.Clause) {
	target := db.Statement.ReflectValue
	for target.Kind() == reflect.Pointer {
		target = target.Elem()
	}
	fields := deliveredFields(db.Statement, c, true)
	ctx := db.Statement.Context
	set := func(dst, src reflect.Value) {
		for _, f := range fields {
			v, _ := f.ValueOf(ctx, src)
			_ = f.Set(ctx, dst, v)
		}
	}
	switch {
	case len(rows) == 0:
	case target.Kind() == reflect.Struct && target.CanAddr() && target.Type() == rows[0].Type():
		set(target, rows[len(rows)-1])
	case target.Kind() == reflect.Slice && target.CanSet():
		elemType := target.Type().Elem()
		base := elemType
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		if base != rows[0].Type() {
			return
		}
		ret, _ := c.Expression.(clause.Returning)
		if whole := len(ret.Columns) == 0 || (len(ret.Columns) == 1 && ret.Columns[0].Name == "*"); whole || target.Len() == 0 {
			// gorm replaces the slice's contents with the rows returned
			// (partial columns too, into an empty slice).
			target.Set(reflect.MakeSlice(target.Type(), len(rows), len(rows)))
		}
		for i := 0; i < len(rows) && i < target.Len(); i++ {
			dst := target.Index(i)
			if elemType.Kind() == reflect.Pointer {
				if dst.IsNil() {
					dst.Set(reflect.New(base))
				}
				dst = dst.Elem()
			}
			set(dst, rows[i])
		}
	}
}

// deliveredFields lists the fields gorm's create would scan back into the
// caller's records: the columns of the caller's RETURNING clause (all for
// RETURNING *), else the columns with database defaults.
func deliveredFields(stmt *gorm.Statement, c clause.Clause, returned bool) []*schema.Field {
	if !returned {
		var out []*schema.Field
		for _, f := range stmt.Schema.FieldsWithDefaultDBValue {
			if f.Readable {
				out = append(out, f)
			}
		}
		return out
	}
	ret, _ := c.Expression.(clause.Returning)
	if len(ret.Columns) == 0 || (len(ret.Columns) == 1 && ret.Columns[0].Name == "*") {
		var out []*schema.Field
		for _, f := range stmt.Schema.Fields {
			if f.DBName != "" && f.Readable {
				out = append(out, f)
			}
		}
		return out
	}
	var out []*schema.Field
	for _, col := range ret.Columns {
		if f := stmt.Schema.LookUpField(col.Name); f != nil && f.DBName != "" {
			out = append(out, f)
		}
	}
	return out
}

// deliverCreated gives the caller's records what gorm's create would have
// scanned into them: the fields in deliver, from the rows written. Rows are
// matched to records by primary key, and records without one (keys the
// database assigns) in order.
func deliverCreated(db *gorm.DB, recs, written []reflect.Value, deliver []*schema.Field, m *model) {
	if len(deliver) == 0 {
		return
	}
	ctx := db.Statement.Context
	byKey := make(map[string]reflect.Value, len(recs))
	var unkeyed []reflect.Value
	for _, rv := range recs {
		if _, zero := m.pk.ValueOf(ctx, rv); zero {
			unkeyed = append(unkeyed, rv)
		} else {
			byKey[key(ctx, m.pk, rv)] = rv
		}
	}
	for _, w := range written {
		dst, ok := byKey[key(ctx, m.pk, w)]
		if !ok {
			if len(unkeyed) == 0 {
				continue
			}
			dst, unkeyed = unkeyed[0], unkeyed[1:]
		}
		if !dst.CanAddr() {
			continue
		}
		for _, f := range deliver {
			v, _ := f.ValueOf(ctx, w)
			_ = f.Set(ctx, dst, v)
		}
	}
}
