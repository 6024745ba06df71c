package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// snapshot is everything a fault must leave untouched: the steps, as rows,
// and the audit rows.
type snapshot struct {
	Steps  []runbooks.Step
	Audits []audit.Audit
}

func (e *env) snapshot(t testing.TB) snapshot {
	t.Helper()
	var s snapshot
	require.NoError(t, e.db.Unscoped().Order("id").Find(&s.Steps).Error)
	require.NoError(t, e.db.Order("id").Find(&s.Audits).Error)
	return s
}

// seed creates a runbook with two steps in account 7.
func (e *env) seed(t testing.TB) (runbooks.Runbook, []runbooks.Step) {
	t.Helper()
	rb := runbooks.Runbook{AccountID: 7, Name: "Database failover"}
	require.NoError(t, e.w().Create(&rb).Error)
	steps := []runbooks.Step{
		{AccountID: 7, RunbookID: rb.ID, Name: "Page the DBA", Position: 1},
		{AccountID: 7, RunbookID: rb.ID, Name: "Promote replica", Position: 2},
	}
	require.NoError(t, e.w().Create(&steps).Error)
	return rb, steps
}

func requireUnchanged(t testing.TB, e *env, before snapshot, what string) {
	t.Helper()
	if d := cmp.Diff(before, e.snapshot(t)); d != "" {
		t.Fatalf("%s changed the database (-before +after):\n%s", what, d)
	}
}

// secondPool opens an independent PostgreSQL connection pool to the test's
// database, for killing the first pool's backends.
func secondPool(t testing.TB, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = sqlDB.Close() })
	return db
}

// TestReliabilityKilledConnection terminates the writer's backend from
// another connection, once between its writes and its commit and once while
// its audit INSERT waits for a lock, and requires that neither the change
// nor its audit remains.
func TestReliabilityKilledConnection(t *testing.T) {
	t.Parallel()
	rep := report(t, "connection killed mid-transaction (pg_terminate_backend)")
	if dbtest.Dialect() != dbtest.Postgres {
		rep.set("-", "PostgreSQL only: SQLite has no server connection to kill")
		t.Skip("pg_terminate_backend needs PostgreSQL; set TEST_DATABASE_URL (CI runs both)")
	}
	e := setup(t)
	rb, steps := e.seed(t)
	killer := secondPool(t, e.dsn)
	before := e.snapshot(t)

	t.Run("between the writes and the commit", func(t *testing.T) {
		tx := e.w().Begin()
		require.NoError(t, tx.Error)
		require.NoError(t, tx.Create(&runbooks.Step{AccountID: 7, RunbookID: rb.ID, Name: "never committed"}).Error)
		require.NoError(t, tx.Model(&steps[0]).Update("name", "never committed").Error)
		require.NoError(t, tx.Delete(&steps[1]).Error)
		var pid int
		require.NoError(t, tx.Raw(`SELECT pg_backend_pid()`).Scan(&pid).Error)
		var killed bool
		require.NoError(t, killer.Raw(`SELECT pg_terminate_backend(?)`, pid).Scan(&killed).Error)
		require.True(t, killed, "backend %d terminated", pid)
		require.Error(t, tx.Commit().Error, "the commit of a killed connection must fail")
		requireUnchanged(t, e, before, "a killed transaction")
	})

	t.Run("while the audit insert waits", func(t *testing.T) {
		// Another transaction locks the audits table, so the write's own
		// transaction stops at its audit INSERT: after its step INSERT, or,
		// where the audit is written by the same statement (a create on
		// PostgreSQL), before that statement runs.
		blocker := killer.Begin()
		require.NoError(t, blocker.Error)
		defer blocker.Rollback()
		require.NoError(t, blocker.Exec(`LOCK TABLE audits IN EXCLUSIVE MODE`).Error)
		var blockerPID int
		require.NoError(t, blocker.Raw(`SELECT pg_backend_pid()`).Scan(&blockerPID).Error)

		done := make(chan error, 1)
		go func() {
			done <- e.w().Create(&runbooks.Step{AccountID: 7, RunbookID: rb.ID, Name: "killed while audited"}).Error
		}()
		pid := waitForBlockedAuditInsert(t, killer, blockerPID)
		var killed bool
		require.NoError(t, killer.Raw(`SELECT pg_terminate_backend(?)`, pid).Scan(&killed).Error)
		require.True(t, killed)
		select {
		case err := <-done:
			require.Error(t, err, "a write whose connection died must fail")
			t.Logf("the writer saw: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the killed write did not return")
		}
		require.NoError(t, blocker.Rollback().Error)
		requireUnchanged(t, e, before, "a write killed in its audit INSERT")
	})

	// The pool recovers: the next write and its audit go through.
	require.NoError(t, e.w().Model(&steps[0]).Update("name", "after the kill").Error)
	require.Len(t, e.snapshot(t).Audits, len(before.Audits)+1)
	rep.set("2 kills: after 3 writes before COMMIT; during the audit INSERT",
		"the caller gets an error; steps and audits equal to before (go-cmp); the pool writes and audits afterwards")
}

// waitForBlockedAuditInsert returns the pid of the backend whose audit
// INSERT waits for the lock held by backend blocker, polling
// pg_stat_activity for at most 30 s. Other tests' backends cannot wait for
// that lock: it is on this test's own schema.
func waitForBlockedAuditInsert(t testing.TB, db *gorm.DB, blocker int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var pids []int
		require.NoError(t, db.WithContext(ctx).Raw(`SELECT pid FROM pg_stat_activity
			WHERE ? = ANY(pg_blocking_pids(pid)) AND query LIKE '%INSERT INTO "audits"%'`, blocker).Scan(&pids).Error)
		if len(pids) == 1 {
			return pids[0]
		}
		require.Empty(t, pids, "exactly one writer is expected to wait")
		select {
		case <-ctx.Done():
			t.Fatal("no audit INSERT waited for the lock within 30 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestReliabilityFailingAuditInsert makes the database refuse audit rows
// with a trigger that raises, as a full disk or a violated constraint
// would, and requires every kind of write to fail with a *audit.WriteError
// wrapping the database's error, leaving neither the change nor an audit.
func TestReliabilityFailingAuditInsert(t *testing.T) {
	t.Parallel()
	rep := report(t, "audit insert fails (trigger raises)")
	e := setup(t)
	rb, steps := e.seed(t)
	const reason = "simulated disk full"
	if dbtest.Dialect() == dbtest.Postgres {
		require.NoError(t, e.db.Exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION '`+reason+`' USING ERRCODE = 'disk_full'; END $$`).Error)
		require.NoError(t, e.db.Exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audits
			FOR EACH ROW WHEN (NEW.comment = 'refuse') EXECUTE FUNCTION refuse_audit()`).Error)
	} else {
		require.NoError(t, e.db.Exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audits
			WHEN NEW.comment = 'refuse' BEGIN SELECT RAISE(ABORT, '`+reason+`'); END`).Error)
	}
	// Only writes whose context carries this comment are refused, so the
	// test can still write when it means to.
	refused := e.w().WithContext(audit.WithComment(e.ctx, "refuse"))
	before := e.snapshot(t)

	writes := []struct {
		name   string
		action audit.Action
		write  func(db *gorm.DB) error
	}{
		{"create", audit.ActionCreate, func(db *gorm.DB) error {
			return db.Create(&runbooks.Step{AccountID: 7, RunbookID: rb.ID, Name: "refused"}).Error
		}},
		{"create batch", audit.ActionCreate, func(db *gorm.DB) error {
			return db.Create(&[]runbooks.Step{{AccountID: 7, RunbookID: rb.ID, Name: "a"}, {AccountID: 7, RunbookID: rb.ID, Name: "b"}}).Error
		}},
		{"update", audit.ActionUpdate, func(db *gorm.DB) error {
			return db.Model(&steps[0]).Update("name", "refused").Error
		}},
		{"update expression", audit.ActionUpdate, func(db *gorm.DB) error {
			return db.Model(&runbooks.Step{}).Where("runbook_id = ?", rb.ID).Update("position", gorm.Expr("position + 10")).Error
		}},
		{"save", audit.ActionUpdate, func(db *gorm.DB) error {
			s := steps[1]
			s.Name = "refused"
			return db.Save(&s).Error
		}},
		{"soft delete", audit.ActionDestroy, func(db *gorm.DB) error { return db.Delete(&steps[1]).Error }},
		{"hard delete", audit.ActionDestroy, func(db *gorm.DB) error { return db.Unscoped().Delete(&steps[0]).Error }},
		{"caller transaction, refused last", audit.ActionDestroy, func(db *gorm.DB) error {
			return e.w().Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&steps[0]).Update("name", "audited, then rolled back").Error; err != nil {
					return fmt.Errorf("unrefused write: %w", err)
				}
				return tx.WithContext(audit.WithComment(e.ctx, "refuse")).Delete(&steps[1]).Error
			})
		}},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			err := w.write(refused)
			var we *audit.WriteError
			require.ErrorAs(t, err, &we, "the write must fail with a *audit.WriteError")
			require.Equal(t, runbooks.TypeStep, we.Type)
			require.Equal(t, w.action, we.Action)
			require.ErrorContains(t, we.Err, reason, "the database's error is wrapped")
			requireUnchanged(t, e, before, w.name)
		})
	}
	// Without the comment the same writes are audited again.
	require.NoError(t, e.w().Model(&steps[0]).Update("name", "audited").Error)
	require.Len(t, e.snapshot(t).Audits, len(before.Audits)+1)
	rep.set(fmt.Sprintf("%d write forms", len(writes)),
		"errors.As *audit.WriteError (type, action, wrapped DB error); steps and audits equal to before (go-cmp); next write audited")
}
