// Package dialect decides which database a *gorm.DB talks to, and what that
// database can do. It is the only code of the module that reads a gorm
// Dialector's name, and the only one that knows the drivers' error types:
// [Classify] turns a driver error into a [Kind] by its code, never by its
// message.
//
// Callers ask for capabilities ([Dialect.LocksRows],
// [Dialect.SingleStatementCapture], [Dialect.TransactionIDSQL], ...) rather
// than for a database name, so that a decision reads as the reason for it.
package dialect

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The names gorm's Dialectors report for the supported databases.
const (
	postgresName = "postgres"
	sqliteName   = "sqlite"
)

// Dialect is the database of one *gorm.DB and its capabilities. The zero
// value is an unsupported database, with no capability.
type Dialect struct {
	name string
}

// Of returns the dialect of db, decided from its Dialector. A database other
// than PostgreSQL or SQLite is returned as an unsupported dialect (see
// [Dialect.Supported]).
func Of(db *gorm.DB) Dialect {
	return Dialect{name: db.Dialector.Name()}
}

// Name is the Dialector's name, such as "postgres" or "sqlite", for messages.
func (d Dialect) Name() string { return d.name }

// Supported reports whether the module can audit writes on the database:
// PostgreSQL or SQLite.
func (d Dialect) Supported() bool { return d.postgres() || d.name == sqliteName }

func (d Dialect) postgres() bool { return d.name == postgresName }

// LocksRows reports whether SELECT ... FOR UPDATE locks the rows it reads.
// Without it (SQLite) the database has a single writer, and a transaction
// that writes already excludes every other.
func (d Dialect) LocksRows() bool { return d.postgres() }

// ForUpdate returns q locking the rows it reads until the transaction ends,
// where the database locks rows (see [Dialect.LocksRows]); q otherwise.
func (d Dialect) ForUpdate(q *gorm.DB) *gorm.DB {
	if !d.LocksRows() {
		return q
	}
	return q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
}

// SingleStatementCapture reports whether a write and its audit rows can be
// one statement: data-modifying WITH queries, UPDATE ... FROM a locking
// sub-select, whole-row references, and stored functions that raise errors
// with a SQLSTATE of their own (PostgreSQL).
func (d Dialect) SingleStatementCapture() bool { return d.postgres() }

// PartitionsAudits reports whether the audits table can be partitioned by
// range of created_at, with partitions created ahead of the rows they
// will hold (PostgreSQL). Elsewhere (SQLite) it is one table.
func (d Dialect) PartitionsAudits() bool { return d.postgres() }

// InProcess reports whether the database engine runs inside this process
// (SQLite): a statement costs no round trip, but each new statement text
// is parsed and planned again, as the driver keeps no prepared statements
// of its own (pgx does, per connection). A writer there does better to
// keep its statements prepared and to run a one-row statement once per
// row than to build one statement of many rows.
func (d Dialect) InProcess() bool { return d.name == sqliteName }

// CommitsOutOfOrder reports whether rows can become visible out of the
// order of their ids and transaction ids (PostgreSQL: a transaction that
// started first can commit last), so that a reader polling for new rows
// must stop below the oldest running transaction. SQLite's single writer
// commits in order.
func (d Dialect) CommitsOutOfOrder() bool { return d.postgres() }

// TransactionIDSQL is the SQL of an integer that identifies the writing
// transaction and grows with the order in which transactions start; "0"
// where the database has none (SQLite, whose single writer commits in
// order anyway).
func (d Dialect) TransactionIDSQL() string {
	if d.postgres() {
		return "pg_current_xact_id()::text::bigint"
	}
	return "0"
}

// Cast is the SQL suffix that gives a parameter type typ (a PostgreSQL type
// name such as "text" or "jsonb") where the database infers no type for it,
// as in a VALUES list that is not an INSERT's own; "" where parameters need
// no type (SQLite).
func (d Dialect) Cast(typ string) string {
	if d.postgres() {
		return "::" + typ
	}
	return ""
}

// JSONType is the column type of JSON documents: jsonb on PostgreSQL, json
// (text) on SQLite.
func (d Dialect) JSONType() string {
	if d.postgres() {
		return "jsonb"
	}
	return "json"
}

// InsertedByUpsertSQL is a boolean expression, valid in the RETURNING list
// of an INSERT ... ON CONFLICT, that is true for a row the statement
// inserted and false for one it updated; "" where the database cannot tell
// (SQLite).
func (d Dialect) InsertedByUpsertSQL() string {
	if d.postgres() {
		return `("xmax" = 0)`
	}
	return ""
}

// DetachesPartitionsConcurrently reports whether a range-partitioned table
// can lose a partition without blocking its writers: PostgreSQL's DETACH
// PARTITION ... CONCURRENTLY (run outside a transaction), after which the
// detached table is dropped on its own. SQLite has no partitions.
func (d Dialect) DetachesPartitionsConcurrently() bool { return d.postgres() }
