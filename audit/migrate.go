package audit

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
	"github.com/gormaudit/gormaudit/internal/pgfuse"
)

// Migrate creates or updates the audit tables (audits, audit_versions,
// audit_accounts and audit_account_gaps) and their indexes, and on
// PostgreSQL the functions gormaudit_refuse and gormaudit_refuse_change
// that statements writing their own audit rows call. It is safe to run on
// every start, and must run again after upgrading this module.
//
// The audits table has these indexes:
//
//   - UNIQUE (auditable_type, auditable_id, version): a record's history in
//     order, and a backstop against a repeated version;
//   - (account_id, id): an account's log in insertion order;
//   - (account_id, created_at): an account's log by time;
//   - (associated_type, associated_id): a runbook's steps' rows;
//   - (account_id, transaction_id, id): an account's log in commit order,
//     for the polling cursor of the httpapi package;
//   - (account_id, user_id, created_at): one actor's changes by time, for
//     the user_id filter of the httpapi package.
//
// The audit_versions table holds each record's latest version, keyed by
// (auditable_type, auditable_id): a write takes its record's next version
// from it while holding the record's row lock, so versions have no gap and
// no duplicate without reading the audits table. When Migrate creates it,
// it fills it from the audit rows already there, so that an upgraded
// database's records continue their versions. Stop the writers of an older
// release of this module before running it: they do not advance the
// counter (on PostgreSQL their single-statement writes fail, as Migrate
// drops the gormaudit_next_version function they call).
func Migrate(ctx context.Context, db *gorm.DB) error {
	db = db.WithContext(ctx)
	if err := db.AutoMigrate(&Audit{}, &AccountStatus{}, &AccountGap{}); err != nil {
		return fmt.Errorf("audit: migrate: %w", err)
	}
	if err := migrateVersions(db); err != nil {
		return fmt.Errorf("audit: migrate: %s: %w", auditsql.VersionsTable, err)
	}
	if dialect.Of(db).SingleStatementCapture() {
		for _, s := range []struct{ name, sql string }{
			{"drop gormaudit_next_version", auditsql.DropNextVersionFunction},
			{"create gormaudit_refuse", pgfuse.RefuseFunction},
			{"create gormaudit_refuse_change", pgfuse.RefuseChangeFunction},
		} {
			if err := db.Exec(s.sql).Error; err != nil {
				return fmt.Errorf("audit: migrate: %s: %w", s.name, err)
			}
		}
	}
	return nil
}

// migrateVersions creates the audit_versions table, filled from the audit
// rows, if it does not exist.
func migrateVersions(db *gorm.DB) error {
	if db.Migrator().HasTable(auditsql.VersionsTable) {
		return nil
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(auditsql.CreateVersionsTable).Error; err != nil {
			return err
		}
		return tx.Exec(auditsql.SeedVersions).Error
	})
}
