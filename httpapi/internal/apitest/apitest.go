// Package apitest is what the tests of httpapi and its client and webhook
// packages share beyond the module's fixture (internal/fixture): thin
// wrappers of it, concurrent writers, and the account's rows in the polling
// stream's order to compare readers with.
package apitest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Open opens the shared test fixture with the tables of each of migrate
// besides those of runbooks and audit. It returns the audited database and
// a context carrying fixture.Actor.
func Open(t testing.TB, migrate ...fixture.Migration) (*gorm.DB, context.Context) {
	t.Helper()
	e := fixture.Open(t, &fixture.Options{Migrations: migrate})
	return e.DB, e.Ctx
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
				if err := db.Transaction(func(tx *gorm.DB) error { return WriteOne(tx, int64(1+(w+i)%2), fmt.Sprint("w", w, "-", i)) }); err != nil {
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

// WriteOne creates a runbook with two steps in the account and renames it:
// four audit rows.
func WriteOne(tx *gorm.DB, accountID int64, name string) error {
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

// ExampleDB opens the shared fixture's database for runnable examples
// (fixture.Example), with the tables of each of migrate and account 1
// enabled. It returns the audited database and a context carrying
// fixture.Actor; it panics on any error, as examples do.
func ExampleDB(migrate ...fixture.Migration) (*gorm.DB, context.Context) {
	e := fixture.Example(&fixture.Options{Migrations: migrate, Accounts: []int64{1}})
	return e.DB, e.Ctx
}

// ThroughReplica opens dsn, the primary (a DSN of fixture.Env), with gorm's
// dbresolver plugin sending its reads to replicaDSN, as a service reading
// from replicas has it: the reads of tables only (names or models, as
// dbresolver.Register takes them), or every read when tables is empty.
// Both pools are closed when t ends.
func ThroughReplica(t testing.TB, dsn, replicaDSN string, tables ...any) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	require.NoError(t, err)
	standby, err := sql.Open("pgx", replicaDSN)
	require.NoError(t, err)
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
		_ = standby.Close()
	})
	require.NoError(t, db.Use(dbresolver.Register(dbresolver.Config{
		Replicas: []gorm.Dialector{postgres.New(postgres.Config{Conn: standby})},
	}, tables...)))
	return db
}
