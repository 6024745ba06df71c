// Package dbtest gives each test its own database.
//
// By default a test gets a private in-memory SQLite database. When the
// environment variable TEST_DATABASE_URL is set (for example
// "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), the test gets a
// fresh PostgreSQL schema on that server instead, dropped when the test ends.
// A set TEST_DATABASE_URL that cannot be reached fails the test: it never
// silently falls back to SQLite or skips.
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

	"github.com/gormaudit/gormaudit/internal/uuid"
)

// EnvURL is the environment variable that selects PostgreSQL.
const EnvURL = "TEST_DATABASE_URL"

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
