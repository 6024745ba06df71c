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
// audit_accounts, audit_account_gaps and audit_horizons) and their indexes,
// and on PostgreSQL the functions gormaudit_refuse and
// gormaudit_refuse_change that statements writing their own audit rows
// call. It is safe to run on every start, and must run again after
// upgrading this module.
//
// The audits table has these indexes:
//
//   - UNIQUE (auditable_type, auditable_id, version): a record's history in
//     order, and a backstop against a repeated version (not unique in the
//     partitioned layout, see [Partition]);
//   - (account_id, id): an account's log in insertion order;
//   - (account_id, created_at, auditable_type): an account's log by time,
//     and its rows of one type counted from the index alone (the page
//     counts of the httpapi package, by time or not);
//   - (associated_type, associated_id): a runbook's steps' rows;
//   - (account_id, transaction_id, id): an account's log in commit order,
//     for the polling cursor of the httpapi package;
//   - (account_id, user_id, created_at): one actor's changes by time, for
//     the user_id filter of the httpapi package.
//
// Its primary key is (id), or (id, created_at) in the partitioned layout.
// Migrate keeps a partitioned audits table partitioned, creating any of
// these indexes it lacks, and then runs [Maintain] to create the
// partitions of the coming months. It creates an unpartitioned table
// where none exists: call [Partition] to create or convert to the
// partitioned one.
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
	partitioned, err := keepPartitioned(db)
	if err != nil {
		return fmt.Errorf("audit: migrate: %w", err)
	}
	if err := db.AutoMigrate(&Audit{}, &AccountStatus{}, &AccountGap{}, &Horizon{}); err != nil {
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
	if partitioned {
		return Maintain(ctx, db, nil)
	}
	return nil
}

// keepPartitioned reports whether the audits table is partitioned and, if
// it is, creates the partitioned layout's indexes it lacks, under the names
// AutoMigrate looks for, so that AutoMigrate creates none: it would try
// the unique index on versions, which a partitioned table cannot hold.
func keepPartitioned(db *gorm.DB) (bool, error) {
	if !dialect.Of(db).PartitionsAudits() {
		return false, nil
	}
	_, partitioned, err := auditsql.Layout(db)
	if err != nil || !partitioned {
		return false, err
	}
	return true, auditsql.EnsurePartitionedIndexes(db)
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
