package dialect_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// capabilities is what a dialect answers, for comparison.
type capabilities struct {
	Name                                         string
	Supported, LocksRows, SingleStatementCapture bool
	TransactionIDSQL, Cast, JSONType, Inserted   string
}

func capabilitiesOf(d dialect.Dialect) capabilities {
	return capabilities{
		Name: d.Name(), Supported: d.Supported(), LocksRows: d.LocksRows(),
		SingleStatementCapture: d.SingleStatementCapture(), TransactionIDSQL: d.TransactionIDSQL(),
		Cast: d.Cast("text"), JSONType: d.JSONType(), Inserted: d.InsertedByUpsertSQL(),
	}
}

func TestOfDecidesTheCapabilities(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	want := map[string]capabilities{
		dbtest.Postgres: {Name: "postgres", Supported: true, LocksRows: true, SingleStatementCapture: true,
			TransactionIDSQL: "pg_current_xact_id()::text::bigint", Cast: "::text", JSONType: "jsonb", Inserted: `("xmax" = 0)`},
		dbtest.SQLite: {Name: "sqlite", Supported: true, TransactionIDSQL: "0", JSONType: "json"},
	}[dbtest.Dialect()]
	d := dialect.Of(db)
	if diff := cmp.Diff(want, capabilitiesOf(d)); diff != "" {
		t.Fatalf("capabilities (-want +got):\n%s", diff)
	}

	// Every capability SQL runs on the database it was decided for.
	var txid int64
	require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
		return tx.Raw("SELECT " + d.TransactionIDSQL()).Scan(&txid).Error
	}))
	var s string
	require.NoError(t, db.Raw("SELECT ?"+d.Cast("text"), "x").Scan(&s).Error)
	require.Equal(t, "x", s)

	locked := d.ForUpdate(db.Table("sqlite_master"))
	_, hasLock := locked.Statement.Clauses["FOR"]
	require.Equal(t, d.LocksRows(), hasLock, "ForUpdate adds a locking clause exactly where rows are locked")
}

func TestAnUnknownDialectIsUnsupported(t *testing.T) {
	t.Parallel()
	d := dialect.Of(&gorm.DB{Config: &gorm.Config{Dialector: namedDialector{name: "mysql"}}})
	want := capabilities{Name: "mysql", TransactionIDSQL: "0", JSONType: "json"}
	if diff := cmp.Diff(want, capabilitiesOf(d)); diff != "" {
		t.Fatalf("capabilities (-want +got):\n%s", diff)
	}
}

// namedDialector is a gorm.Dialector that only has a name.
type namedDialector struct {
	gorm.Dialector
	name string
}

func (n namedDialector) Name() string { return n.name }

func TestClassifyByCode(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "unrelated text"} }
	lite := func(code sqlite3.ErrNo, ext sqlite3.ErrNoExtended) error {
		return sqlite3.Error{Code: code, ExtendedCode: ext}
	}
	for _, c := range []struct {
		name string
		err  error
		want dialect.Kind
	}{
		{"pg unique", pg("23505"), dialect.KindUniqueViolation},
		{"pg not null", pg("23502"), dialect.KindNotNullViolation},
		{"pg check or no partition", pg("23514"), dialect.KindCheckViolation},
		{"pg foreign key", pg("23503"), dialect.KindOther},
		{"pg serialization", pg("40001"), dialect.KindSerializationFailure},
		{"pg deadlock", pg("40P01"), dialect.KindDeadlock},
		{"pg connection", pg("08006"), dialect.KindConnection},
		{"pg terminated", pg("57P01"), dialect.KindInterrupted},
		{"pg undefined table", pg("42P01"), dialect.KindSyntaxOrAccess},
		{"pg numeric out of range", pg("22003"), dialect.KindDataException},
		{"pg own code", pg("GA001"), dialect.KindOther},
		{"sqlite unique", lite(sqlite3.ErrConstraint, sqlite3.ErrConstraintUnique), dialect.KindUniqueViolation},
		{"sqlite primary key", lite(sqlite3.ErrConstraint, sqlite3.ErrConstraintPrimaryKey), dialect.KindUniqueViolation},
		{"sqlite not null", lite(sqlite3.ErrConstraint, sqlite3.ErrConstraintNotNull), dialect.KindNotNullViolation},
		{"sqlite check", lite(sqlite3.ErrConstraint, sqlite3.ErrConstraintCheck), dialect.KindOther},
		{"sqlite busy", lite(sqlite3.ErrBusy, sqlite3.ErrBusySnapshot), dialect.KindBusy},
		{"sqlite locked", lite(sqlite3.ErrLocked, sqlite3.ErrNoExtended(sqlite3.ErrLocked)), dialect.KindBusy},
		{"sqlite pointer", &sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: 5}, dialect.KindBusy},
		{"wrapped", fmt.Errorf("outer: %w", pg("40P01")), dialect.KindDeadlock},
		{"joined", fmt.Errorf("%w: %w", errors.New("first"), lite(sqlite3.ErrBusy, 5)), dialect.KindBusy},
	} {
		got, ok := dialect.Classify(c.err)
		require.True(t, ok, c.name)
		require.Equal(t, c.want, got.Kind, c.name)
	}
	_, ok := dialect.Classify(errors.New(`UNIQUE constraint failed: audits.version`))
	require.False(t, ok, "a message is never classified")
	_, ok = dialect.Classify(nil)
	require.False(t, ok)
}

func TestClassifyRealErrors(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	require.NoError(t, db.Exec(`CREATE TABLE things (id integer PRIMARY KEY, name varchar(20) NOT NULL)`).Error)
	require.NoError(t, db.Exec(`CREATE UNIQUE INDEX idx_things_name ON things (name)`).Error)
	require.NoError(t, db.Exec(`INSERT INTO things (id, name) VALUES (1, 'a')`).Error)
	postgres := dbtest.Dialect() == dbtest.Postgres

	e, ok := dialect.Classify(db.Exec(`INSERT INTO things (id, name) VALUES (2, 'a')`).Error)
	require.True(t, ok)
	want := dialect.Error{Kind: dialect.KindUniqueViolation, Code: "2067"}
	if postgres {
		want = dialect.Error{Kind: dialect.KindUniqueViolation, Code: "23505", Table: "things", Constraint: "idx_things_name",
			Detail: "Key (name)=(a) already exists."}
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Fatalf("unique violation (-want +got):\n%s", diff)
	}

	e, ok = dialect.Classify(db.Exec(`INSERT INTO things (id, name) VALUES (3, NULL)`).Error)
	require.True(t, ok)
	require.Equal(t, dialect.KindNotNullViolation, e.Kind)
	if postgres {
		require.Equal(t, "name", e.Column)
		e, ok = dialect.Classify(db.Exec(`SELECT nope FROM things`).Error)
		require.True(t, ok)
		require.Equal(t, dialect.KindSyntaxOrAccess, e.Kind)
		require.Equal(t, len("SELECT ")+1, e.Position, "the position of the undefined column")
	}
}
