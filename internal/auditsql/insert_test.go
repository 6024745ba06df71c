package auditsql_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// stored is what the test reads back of an inserted row.
type stored struct {
	AccountID     int64
	AuditableType string
	AuditableID   string
	Version       int
	Comment       string
}

// insert takes the rows' versions and inserts the rows kept, as the audit
// package's portable path does, in one transaction.
func insert(t *testing.T, db *gorm.DB, gated bool, rows ...auditsql.Row) {
	t.Helper()
	require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
		kept, err := auditsql.TakeVersions(tx, dialect.Of(tx), rows, gated)
		if err != nil || len(kept) == 0 {
			return err
		}
		sql, args := auditsql.Insert(dialect.Of(tx), kept)
		return tx.Exec(sql, args...).Error
	}))
}

func row(account int64, id, comment string) auditsql.Row {
	return auditsql.Row{AccountID: account, AuditableID: id, AuditableType: "T", Action: "update",
		Changes: `{}`, Comment: comment, CreatedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
}

// counters reads the audit_versions table: "type/id" → latest version.
func counters(t *testing.T, db *gorm.DB) map[string]int64 {
	t.Helper()
	var rows []struct {
		AuditableType, AuditableID string
		Version                    int64
	}
	require.NoError(t, db.Table(auditsql.VersionsTable).Find(&rows).Error)
	out := map[string]int64{}
	for _, r := range rows {
		out[r.AuditableType+"/"+r.AuditableID] = r.Version
	}
	return out
}

// TestInsertNumbersVersionsPerRecordAndGatesAccounts inserts rows from
// values: each record's versions count from 1 on their own, rows of one
// record in one batch get consecutive versions, and a gated batch keeps
// only the rows of enabled accounts, whose rows take no version.
func TestInsertNumbersVersionsPerRecordAndGatesAccounts(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, audit.Migrate(ctx, db))
	_, err := audit.EnableAccount(ctx, db, 1)
	require.NoError(t, err)

	insert(t, db, false, row(1, "a", "first"), row(1, "b", "first"))
	insert(t, db, false, row(1, "a", "second"))
	insert(t, db, true, row(1, "a", "gated, enabled"), row(2, "b", "gated, not enabled"), row(1, "a", "again"))
	insert(t, db, true, row(2, "c", "gated, not enabled"))

	var got []stored
	require.NoError(t, db.Table(auditsql.Table).Order("id").Find(&got).Error)
	want := []stored{
		{1, "T", "a", 1, "first"},
		{1, "T", "b", 1, "first"},
		{1, "T", "a", 2, "second"},
		{1, "T", "a", 3, "gated, enabled"},
		{1, "T", "a", 4, "again"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"T/a": 4, "T/b": 1}, counters(t, db)); diff != "" {
		t.Fatalf("counters (-want +got):\n%s", diff)
	}

	first, last, err := auditsql.Bounds(db, "T", "a")
	require.NoError(t, err)
	require.Equal(t, [2]int{1, 4}, [2]int{first, last})
}

// TestARolledBackWriteTakesNoVersion takes versions in a transaction that
// rolls back: the counter is as before, so the next write continues
// without a gap.
func TestARolledBackWriteTakesNoVersion(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	require.NoError(t, audit.Migrate(context.Background(), db))
	insert(t, db, false, row(1, "a", "first"))

	tx := db.Begin()
	_, err := auditsql.TakeVersions(tx, dialect.Of(tx), []auditsql.Row{row(1, "a", "rolled back")}, false)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback().Error)

	insert(t, db, false, row(1, "a", "second"))
	var versions []int
	require.NoError(t, db.Table(auditsql.Table).Order("id").Pluck("version", &versions).Error)
	require.Equal(t, []int{1, 2}, versions)
}

// TestTakeVersionThenInsertTaken writes rows one at a time as the audit
// package does on SQLite (TakeVersion, then InsertTakenSQL with
// Row.TakenArgs) and reads them back whole: each field where it belongs,
// versions following the record's counter, and a gated account's row
// taking no version and not inserted.
func TestTakeVersionThenInsertTaken(t *testing.T) {
	db := dbtest.Open(t)
	require.NoError(t, audit.Migrate(context.Background(), db))
	_, err := audit.EnableAccount(context.Background(), db, 3)
	require.NoError(t, err)
	at := time.Date(2024, 5, 1, 2, 3, 4, 5000000, time.UTC)
	full := func(account int64, id string) auditsql.Row {
		return auditsql.Row{AccountID: account, AuditableID: id, AuditableType: "T", AssociatedID: "a", AssociatedType: "A",
			UserID: "u", UserType: "User", Action: "update", Changes: `{"x":1}`, Comment: "c", RemoteAddress: "r",
			RequestUUID: "q", CreatedAt: at}
	}
	d := dialect.Of(db)
	require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
		for _, r := range []auditsql.Row{full(3, "x"), full(3, "x"), full(4, "y"), full(3, "z")} {
			args := []any{r.AuditableType, r.AuditableID, r.AccountID}
			res := tx.Exec(auditsql.TakeVersion(d, true), args...)
			if res.Error != nil || res.RowsAffected == 0 {
				if res.Error == nil {
					require.Equal(t, int64(4), r.AccountID, "only account 4 is not enabled")
				}
				continue
			}
			if err := tx.Exec(auditsql.InsertTakenSQL(d), r.TakenArgs()...).Error; err != nil {
				return err
			}
		}
		return nil
	}))
	var got []audit.Audit
	require.NoError(t, db.Order("id").Find(&got).Error)
	var want []audit.Audit
	for i, v := range []struct {
		id      string
		version int
	}{{"x", 1}, {"x", 2}, {"z", 1}} {
		want = append(want, audit.Audit{ID: got[i].ID, AccountID: 3, AuditableID: v.id, AuditableType: "T", AssociatedID: "a",
			AssociatedType: "A", UserID: "u", UserType: "User", Action: "update", AuditedChanges: audit.Changes{"x": []byte("1")}, TransactionID: got[i].TransactionID,
			Version: v.version, Comment: "c", RemoteAddress: "r", RequestUUID: "q", CreatedAt: at})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rows read back (-want +got):\n%s", diff)
	}
	require.Equal(t, map[string]int64{"T/x": 2, "T/z": 1}, counters(t, db))
}
