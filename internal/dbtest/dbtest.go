// Package dbtest gives each test its own database.
//
// By default a test gets a private in-memory SQLite database. When the
// environment variable TEST_DATABASE_URL is set (for example
// "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), the test gets a
// fresh PostgreSQL schema on that server instead, dropped when the test ends.
// A set TEST_DATABASE_URL that cannot be reached fails the test: it never
// silently falls back to SQLite or skips.
//
// When TEST_AUDIT_LAYOUT is "partitioned" as well, each fresh PostgreSQL
// schema gets the audits table in the partitioned layout before the test
// migrates anything (see audit.Partition), so that the whole suite runs on
// it: monthly partitions for the current month and the next three (those
// audit.Maintain creates by default), and one partition on either side
// holding every earlier and every later created_at, for the tests whose
// clocks are set in other years.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/uuid"
)

// EnvURL is the environment variable that selects PostgreSQL.
const EnvURL = "TEST_DATABASE_URL"

// EnvLayout is the environment variable that selects the audits table's
// layout on PostgreSQL: "partitioned", or empty for the plain table.
const EnvLayout = "TEST_AUDIT_LAYOUT"

// Layouts returned by [Layout].
const (
	Plain       = "plain"
	Partitioned = "partitioned"
)

// Layout reports the audits table's layout that Open sets up in this run:
// Partitioned on PostgreSQL with TEST_AUDIT_LAYOUT=partitioned, Plain
// otherwise.
func Layout() string {
	if Dialect() == Postgres && os.Getenv(EnvLayout) == Partitioned {
		return Partitioned
	}
	return Plain
}

// Dialect names returned by [Dialect].
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

var sqliteSeq atomic.Int64

// Dialect reports which database Open hands out in this run.
func Dialect() string {
	if os.Getenv(EnvURL) != "" {
		return Postgres
	}
	return SQLite
}

// Open returns a *gorm.DB on a database private to t. The database (or
// schema) is removed when t ends.
func Open(t testing.TB) *gorm.DB {
	t.Helper()
	db, _ := open(t)
	return db
}

// OpenWithURL is Open that also returns a DSN pointing at the same database,
// so that a test can open a second, independent connection pool to it (for
// example to terminate a backend). For SQLite the DSN is the shared in-memory
// database's name.
func OpenWithURL(t testing.TB) (*gorm.DB, string) {
	t.Helper()
	return open(t)
}

func open(t testing.TB) (*gorm.DB, string) {
	t.Helper()
	cfg := &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)}
	if raw := os.Getenv(EnvURL); raw != "" {
		return openPostgres(t, raw, cfg)
	}
	name := fmt.Sprintf("file:dbtest_%d_%s?mode=memory&cache=shared&_foreign_keys=1&_busy_timeout=10000",
		sqliteSeq.Add(1), strings.ReplaceAll(uuid.New(), "-", ""))
	db, err := gorm.Open(sqlite.Open(name), cfg)
	if err != nil {
		t.Fatalf("dbtest: open sqlite: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	// One connection: SQLite has a single writer, and a shared in-memory
	// database lives only while a connection to it is open.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	// The pool drops its connection when a query is interrupted (a
	// cancelled context), which would drop the database with it: a second,
	// idle connection keeps it alive until the test ends.
	anchor, err := sql.Open("sqlite3", name)
	if err == nil {
		err = anchor.Ping()
	}
	if err != nil {
		t.Fatalf("dbtest: open sqlite: %v", err)
	}
	t.Cleanup(func() {
		_ = sqlDB.Close()
		_ = anchor.Close()
	})
	return db, name
}

func openPostgres(t testing.TB, raw string, cfg *gorm.Config) (*gorm.DB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	admin, err := sql.Open("pgx", raw)
	if err != nil {
		t.Fatalf("dbtest: %s=%q: %v", EnvURL, raw, err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("dbtest: %s is set but PostgreSQL is unreachable: %v", EnvURL, err)
	}
	schema := "t_" + strings.ReplaceAll(uuid.New(), "-", "")[:20]
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("dbtest: create schema: %v", err)
	}
	dsn, err := withSearchPath(raw, schema)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db, err := gorm.Open(postgres.Open(dsn), cfg)
	if err != nil {
		t.Fatalf("dbtest: open postgres: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	sqlDB.SetMaxOpenConns(40)
	t.Cleanup(func() {
		_ = sqlDB.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drop, err := sql.Open("pgx", raw)
		if err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
			return
		}
		defer drop.Close()
		if _, err := drop.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
	})
	if err := setUpLayout(db); err != nil {
		t.Fatalf("dbtest: %s=%q: %v", EnvLayout, os.Getenv(EnvLayout), err)
	}
	return db, dsn
}

// withSearchPath adds search_path=schema to a URL or key=value DSN.
func withSearchPath(raw, schema string) (string, error) {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvURL, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return raw + " search_path=" + schema, nil
}

// OpenSchema returns a *gorm.DB on the PostgreSQL schema name of
// TEST_DATABASE_URL's database, creating the schema when it is missing.
// Unlike Open it keeps the schema when t ends, so that data too slow to make
// for every run (the scale benchmarks' seeded logs) is made once and reused;
// the caller decides when it is stale and drops it (DROP SCHEMA … CASCADE).
// It fails t when TEST_DATABASE_URL is not set: SQLite in memory keeps
// nothing.
func OpenSchema(t testing.TB, name string) *gorm.DB {
	t.Helper()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		t.Fatalf("dbtest: OpenSchema(%q) needs %s", name, EnvURL)
	}
	dsn, err := withSearchPath(raw, name)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		t.Fatalf("dbtest: open postgres: %v", err)
	}
	// Two test processes may ask for the same schema at once: CREATE
	// SCHEMA IF NOT EXISTS alone can still fail one of them.
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(?))`, "dbtest schema "+name).Error; err != nil {
			return err
		}
		return tx.Exec(`CREATE SCHEMA IF NOT EXISTS ` + name).Error
	})
	if err != nil {
		t.Fatalf("dbtest: create schema %s: %v", name, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	sqlDB.SetMaxOpenConns(40)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// setUpLayout creates the audits table in the layout TEST_AUDIT_LAYOUT
// asks for: nothing for the plain one, which the test's migration
// creates.
func setUpLayout(db *gorm.DB) error {
	switch os.Getenv(EnvLayout) {
	case "", Plain:
		return nil
	case Partitioned:
	default:
		return fmt.Errorf("unknown layout (want %q or %q)", Plain, Partitioned)
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if err := auditsql.CreatePartitioned(tx); err != nil {
			return err
		}
		first := auditsql.MonthOf(time.Now())
		for i := 0; i <= auditsql.DefaultMonthsAhead; i++ {
			if _, err := auditsql.AddMonthPartition(tx, first.AddDate(0, i, 0)); err != nil {
				return err
			}
		}
		after := first.AddDate(0, auditsql.DefaultMonthsAhead+1, 0)
		if _, err := auditsql.AddRangePartition(tx, auditsql.Table+"_p_before", nil, &first); err != nil {
			return err
		}
		_, err := auditsql.AddRangePartition(tx, auditsql.Table+"_p_after", &after, nil)
		return err
	})
}
