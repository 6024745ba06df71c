package dialect

import (
	"errors"
	"reflect"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// Kind is what a driver error means, as its code says.
type Kind int

// The kinds of driver errors the module tells apart.
const (
	// KindOther is any error not listed below, or not a driver error.
	KindOther Kind = iota
	// KindUniqueViolation: a unique index or primary key refused a row.
	KindUniqueViolation
	// KindNotNullViolation: a NOT NULL column was given NULL.
	KindNotNullViolation
	// KindSerializationFailure: the transaction must be retried
	// (PostgreSQL class 40 other than a deadlock).
	KindSerializationFailure
	// KindDeadlock: the transaction was chosen to break a deadlock.
	KindDeadlock
	// KindBusy: the database or a table was locked by another connection
	// for longer than the busy timeout (SQLite).
	KindBusy
	// KindConnection: the connection failed (PostgreSQL class 08).
	KindConnection
	// KindInterrupted: the statement was cancelled or its backend
	// terminated (PostgreSQL class 57, operator intervention).
	KindInterrupted
	// KindSyntaxOrAccess: the statement names something that does not
	// exist, is malformed, or is not allowed (PostgreSQL class 42).
	KindSyntaxOrAccess
	// KindDataException: a value was out of range or malformed
	// (PostgreSQL class 22).
	KindDataException
	// KindCheckViolation: a row failed a CHECK constraint, or no partition
	// of a partitioned table holds it (PostgreSQL 23514; Table names the
	// table).
	KindCheckViolation
)

// Error is a driver error as its code and structured fields describe it.
type Error struct {
	Kind Kind
	// Code is PostgreSQL's SQLSTATE, or SQLite's extended result code in
	// decimal.
	Code string
	// Table, Column and Constraint name the object the error is about,
	// when PostgreSQL says (SQLite never does).
	Table, Column, Constraint string
	// Detail and Hint are PostgreSQL's DETAIL and HINT fields.
	Detail, Hint string
	// Position is where PostgreSQL found the error in the statement's
	// text, in characters from 1; 0 when it did not say.
	Position int
}

// Classify returns the driver error in err's chain, described by its code.
// ok is false when err holds no PostgreSQL or SQLite driver error.
func Classify(err error) (e Error, ok bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return Error{
			Kind:       postgresKind(pgErr.Code),
			Code:       pgErr.Code,
			Table:      pgErr.TableName,
			Column:     pgErr.ColumnName,
			Constraint: pgErr.ConstraintName,
			Detail:     pgErr.Detail,
			Hint:       pgErr.Hint,
			Position:   int(pgErr.Position),
		}, true
	}
	if code, ok := sqliteCode(err); ok {
		return Error{Kind: sqliteKind(code), Code: strconv.Itoa(code)}, true
	}
	return Error{}, false
}

// postgresKind classifies a SQLSTATE: a few exact codes, then classes.
func postgresKind(code string) Kind {
	switch code {
	case "23505":
		return KindUniqueViolation
	case "23502":
		return KindNotNullViolation
	case "23514":
		return KindCheckViolation
	case "40P01":
		return KindDeadlock
	}
	if len(code) != 5 {
		return KindOther
	}
	switch code[:2] {
	case "40":
		return KindSerializationFailure
	case "08":
		return KindConnection
	case "57":
		return KindInterrupted
	case "42":
		return KindSyntaxOrAccess
	case "22":
		return KindDataException
	}
	return KindOther
}

// SQLite's result codes (https://www.sqlite.org/rescode.html).
const (
	sqliteBusy                = 5
	sqliteLocked              = 6
	sqliteConstraintNotNull   = 19 | 5<<8
	sqliteConstraintPrimary   = 19 | 6<<8
	sqliteConstraintUnique    = 19 | 8<<8
	sqliteConstraintRowID     = 19 | 10<<8
	sqliteResultCodePrimaryOf = 0xff
)

func sqliteKind(extended int) Kind {
	switch extended {
	case sqliteConstraintUnique, sqliteConstraintPrimary, sqliteConstraintRowID:
		return KindUniqueViolation
	case sqliteConstraintNotNull:
		return KindNotNullViolation
	}
	switch extended & sqliteResultCodePrimaryOf {
	case sqliteBusy, sqliteLocked:
		return KindBusy
	}
	return KindOther
}

// sqlitePkg and sqliteErrorName name the error type of
// github.com/mattn/go-sqlite3, the driver of gorm.io/driver/sqlite.
const sqlitePkg, sqliteErrorName = "github.com/mattn/go-sqlite3", "Error"

// sqliteCode returns the extended result code of the go-sqlite3 error in
// err's tree. The type is recognised by its package path and name and read
// by reflection rather than imported: importing go-sqlite3 would link the
// SQLite C library into every program that audits PostgreSQL, and its Error
// type does not exist at all when cgo is disabled.
func sqliteCode(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if t := v.Type(); t.PkgPath() == sqlitePkg && t.Name() == sqliteErrorName && t.Kind() == reflect.Struct {
		if f := v.FieldByName("ExtendedCode"); f.IsValid() && f.CanInt() {
			return int(f.Int()), true
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return sqliteCode(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if code, ok := sqliteCode(e); ok {
				return code, true
			}
		}
	}
	return 0, false
}
