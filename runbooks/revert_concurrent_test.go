package runbooks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestRevertWaitsForAStepBeingAdded adds a step in a transaction that stays
// open while the runbook is reverted to a moment before that step existed.
// The revert must wait for the step's transaction and discard the step; if
// it listed the runbook's steps without waiting, the step would survive.
func TestRevertWaitsForAStepBeingAdded(t *testing.T) {
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has one writer: no step can be added while a revert runs")
	}
	t.Parallel()
	db, ctx, clk := open(t)
	rb := runbooks.Runbook{AccountID: 1, Name: "Failover"}
	require.NoError(t, db.WithContext(ctx).Create(&rb).Error)
	first := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Page the DBA"}
	require.NoError(t, db.WithContext(ctx).Create(&first).Error)
	at := clk.Now()

	adding := db.WithContext(ctx).Begin()
	late := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Added during the revert", Position: 1}
	require.NoError(t, adding.Create(&late).Error)

	done := make(chan error, 1)
	go func() { done <- runbooks.Revert(ctx, db, rb.ID, at, nil) }()

	// Commit the step only once the revert is either finished (it did not
	// wait: the bug) or waiting for a lock (it must then see the step).
	deadline := time.Now().Add(30 * time.Second)
	var finished bool
	var revertErr error
	for !finished && time.Now().Before(deadline) {
		select {
		case revertErr = <-done:
			finished = true
			continue
		case <-time.After(10 * time.Millisecond):
		}
		var waiting int64
		require.NoError(t, db.Raw(`SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('tuple', 'transactionid')`).
			Scan(&waiting).Error)
		if waiting > 0 {
			break
		}
	}
	require.NoError(t, adding.Commit().Error)
	if !finished {
		revertErr = <-done
	}
	require.NoError(t, revertErr)

	got := snapshot(t, db, rb.ID)
	require.Len(t, got.Steps, 1, "the step added while the revert ran must be discarded")
	require.Equal(t, first.ID, got.Steps[0].ID)
}
