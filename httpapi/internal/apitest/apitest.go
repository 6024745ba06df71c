// Package apitest is the test environment shared by the tests of httpapi
// and its client and webhook packages: a database from the dbtest fixture
// with every table and the audit plugin, concurrent writers, and the
// account's rows in the polling stream's order to compare readers with.
package apitest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Actor is the actor of every write the tests make, and of the reference
// row (../shared/reference/seed-step-create.json).
var Actor = audit.Actor{ID: "0d2e8479-c00b-44c7-bca4-01e60a3e8035", Type: "User"}

// Open opens a test database with the tables of runbooks.Migrate,
// audit.Migrate and each of migrate, and the audit plugin registered. It
// returns the database and a context carrying [Actor].
func Open(t testing.TB, migrate ...func(context.Context, *gorm.DB) error) (*gorm.DB, context.Context) {
	t.Helper()
	db := dbtest.Open(t)
	ctx := context.Background()
	for _, m := range append([]func(context.Context, *gorm.DB) error{runbooks.Migrate, audit.Migrate}, migrate...) {
		require.NoError(t, m(ctx, db))
	}
	require.NoError(t, db.Use(audit.New(audit.Config{Models: runbooks.Models()})))
	return db, audit.WithActor(ctx, Actor)
}

// StreamIDs returns the ids of the account's rows that match where, in the
// polling stream's order.
func StreamIDs(t testing.TB, db *gorm.DB, accountID int64, where string, args ...any) []int64 {
	t.Helper()
	order := "id"
	if dbtest.Dialect() == dbtest.Postgres {
		order = "transaction_id, id"
	}
	q := db.Model(&audit.Audit{}).Where("account_id = ?", accountID)
	if where != "" {
		q = q.Where(where, args...)
	}
	var out []int64
	require.NoError(t, q.Order(order).Pluck("id", &out).Error)
	return out
}

// WriteConcurrently runs writers goroutines that each commit txs
// transactions of four audited writes on db (a runbook, two steps, an
// update), alternating between accounts 1 and 2. It returns a channel that
// yields the first error, or nil, when they are all done.
func WriteConcurrently(db *gorm.DB, writers, txs int) <-chan error {
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range txs {
				if err := db.Transaction(func(tx *gorm.DB) error { return writeOne(tx, int64(1+(w+i)%2), fmt.Sprint("w", w, "-", i)) }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan error, 1)
	go func() {
		wg.Wait()
		close(errs)
		done <- <-errs
	}()
	return done
}

// writeOne creates a runbook with two steps and renames it.
func writeOne(tx *gorm.DB, accountID int64, name string) error {
	rb := runbooks.Runbook{AccountID: accountID, Name: name}
	if err := tx.Create(&rb).Error; err != nil {
		return err
	}
	steps := []runbooks.Step{
		{AccountID: rb.AccountID, RunbookID: rb.ID, Name: "one"},
		{AccountID: rb.AccountID, RunbookID: rb.ID, Name: "two", Position: 1},
	}
	if err := tx.Create(&steps).Error; err != nil {
		return err
	}
	return tx.Model(&rb).Update("name", rb.Name+" done").Error
}

// Settle waits until every audit row written so far is in the polling
// stream. On PostgreSQL a transaction open anywhere on the server (another
// test, another package's test process) holds rows written after it began
// back from the stream until it ends; tests that expect to poll everything
// they wrote call this first. It waits for that condition, polling it, for
// at most a minute.
func Settle(t testing.TB, db *gorm.DB) {
	t.Helper()
	if dbtest.Dialect() != dbtest.Postgres {
		return
	}
	var maxTx int64
	require.NoError(t, db.Raw(`SELECT COALESCE(MAX(transaction_id), 0) FROM audits`).Scan(&maxTx).Error)
	deadline := time.Now().Add(time.Minute)
	for {
		var xmin int64
		require.NoError(t, db.Raw(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin).Error)
		if xmin > maxTx {
			return
		}
		require.True(t, time.Now().Before(deadline), "transaction %d still holds the stream back after a minute", xmin)
		select {
		case <-time.After(5 * time.Millisecond):
		case <-t.Context().Done():
		}
	}
}

// ExampleDB opens an in-memory SQLite database for runnable examples, with
// the tables of runbooks.Migrate, audit.Migrate and each of migrate, the
// audit plugin, and account 1 enabled. It returns the database and a
// context carrying [Actor]; it panics on any error, as examples do.
func ExampleDB(migrate ...func(context.Context, *gorm.DB) error) (*gorm.DB, context.Context) {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		panic(err)
	}
	sqlDB.SetMaxOpenConns(1) // one in-memory database, one connection
	ctx := context.Background()
	for _, m := range append([]func(context.Context, *gorm.DB) error{runbooks.Migrate, audit.Migrate}, migrate...) {
		if err := m(ctx, db); err != nil {
			panic(err)
		}
	}
	if err := db.Use(audit.New(audit.Config{Models: runbooks.Models()})); err != nil {
		panic(err)
	}
	if _, err := audit.EnableAccount(ctx, db, 1); err != nil {
		panic(err)
	}
	return db, audit.WithActor(ctx, Actor)
}
