package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
)

func TestMigrateCreatesTheAuditTablesAndIndexes(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, audit.Migrate(ctx, db))
	require.NoError(t, audit.Migrate(ctx, db), "Migrate must be safe to run again")

	m := db.Migrator()
	require.True(t, m.HasTable(audit.TableName))
	require.True(t, m.HasTable(audit.AccountsTableName))
	// The indexes as the database defines them: name → "UNIQUE? (cols)".
	got := map[string]string{}
	var defs []struct{ Name, Def string }
	if dbtest.Dialect() == dbtest.Postgres {
		require.NoError(t, db.Raw(`SELECT indexname AS name, indexdef AS def FROM pg_indexes
			WHERE schemaname = current_schema() AND tablename = 'audits'`).Scan(&defs).Error)
	} else {
		require.NoError(t, db.Raw(`SELECT name, sql AS def FROM sqlite_master
			WHERE type = 'index' AND tbl_name = 'audits' AND sql IS NOT NULL`).Scan(&defs).Error)
	}
	for _, d := range defs {
		cols := d.Def[strings.LastIndex(d.Def, "(")+1 : strings.LastIndex(d.Def, ")")]
		cols = strings.NewReplacer(`"`, "", "`", "", " ", "").Replace(cols)
		if strings.Contains(strings.ToUpper(d.Def), "UNIQUE") {
			cols = "UNIQUE " + cols
		}
		got[d.Name] = cols
	}
	want := map[string]string{
		"idx_audits_auditable_version": "UNIQUE auditable_type,auditable_id,version",
		"idx_audits_account_id":        "account_id,id",
		"idx_audits_associated":        "associated_type,associated_id",
		"idx_audits_account_created":   "account_id,created_at,auditable_type",
		"idx_audits_account_txid":      "account_id,transaction_id,id",
		"idx_audits_account_user":      "account_id,user_id,created_at",
	}
	partitioned := dbtest.Layout() == dbtest.Partitioned
	if partitioned {
		// A partitioned table's unique indexes must hold created_at.
		want["idx_audits_auditable_version"] = "auditable_type,auditable_id,version"
		want["audits_pkey"] = "UNIQUE id,created_at"
	}
	for name, cols := range want {
		require.Equal(t, cols, got[name], "index %s", name)
	}

	// The unique index refuses a repeated version; in the partitioned
	// layout only the version counters keep versions unique.
	row := audit.Audit{AccountID: 1, AuditableID: "a", AuditableType: "T", Action: audit.ActionCreate,
		AuditedChanges: audit.Changes{}, Version: 1, CreatedAt: time.Now()}
	require.NoError(t, db.Create(&row).Error)
	dup := row
	dup.ID = 0
	if partitioned {
		require.NoError(t, db.Create(&dup).Error)
	} else {
		require.Error(t, db.Create(&dup).Error)
	}

	if dbtest.Dialect() == dbtest.Postgres {
		var typ string
		require.NoError(t, db.Raw(`SELECT data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'audits' AND column_name = 'audited_changes'`).Scan(&typ).Error)
		require.Equal(t, "jsonb", typ)
	}
}
