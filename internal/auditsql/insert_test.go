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

func insert(t *testing.T, db *gorm.DB, gated bool, rows ...auditsql.Row) {
	t.Helper()
	sql, args := auditsql.Insert(dialect.Of(db), rows, gated)
	require.NoError(t, db.Exec(sql, args...).Error)
}

func row(account int64, id, comment string) auditsql.Row {
	return auditsql.Row{AccountID: account, AuditableID: id, AuditableType: "T", Action: "update",
		Changes: `{}`, Comment: comment, CreatedAt: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
}

// TestInsertNumbersVersionsPerRecordAndGatesAccounts inserts rows from
// values: each record's versions count from 1 on their own, and a gated
// INSERT keeps only the rows of enabled accounts.
func TestInsertNumbersVersionsPerRecordAndGatesAccounts(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, audit.Migrate(ctx, db))
	_, err := audit.EnableAccount(ctx, db, 1)
	require.NoError(t, err)

	insert(t, db, false, row(1, "a", "first"), row(1, "b", "first"))
	insert(t, db, false, row(1, "a", "second"))
	insert(t, db, true, row(1, "a", "gated, enabled"), row(2, "b", "gated, not enabled"))

	var got []stored
	require.NoError(t, db.Table(auditsql.Table).Order("id").Find(&got).Error)
	want := []stored{
		{1, "T", "a", 1, "first"},
		{1, "T", "b", 1, "first"},
		{1, "T", "a", 2, "second"},
		{1, "T", "a", 3, "gated, enabled"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}

	first, last, err := auditsql.Bounds(db, "T", "a")
	require.NoError(t, err)
	require.Equal(t, [2]int{1, 3}, [2]int{first, last})

	if dialect.Of(db).SingleStatementCapture() {
		// The function single statements call computes the same next
		// version as the INSERT from values.
		var next int
		require.NoError(t, db.Raw(`SELECT `+auditsql.NextVersionFunction+`(?, ?)`, "T", "a").Scan(&next).Error)
		require.Equal(t, 4, next)
	}
}
