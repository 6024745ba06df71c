package audit

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
	"github.com/gormaudit/gormaudit/internal/pgfuse"
)

// Migrate creates or updates the audit tables (audits, audit_accounts and
// audit_account_gaps) and their indexes, and on PostgreSQL the functions
// gormaudit_next_version, gormaudit_refuse and gormaudit_refuse_change that
// statements writing their own audit rows call. It is safe to run on every
// start, and must run again after upgrading this module.
//
// The audits table has these indexes:
//
//   - UNIQUE (auditable_type, auditable_id, version): a record's history in
//     order, and the guarantee that no version repeats;
//   - (account_id, id): an account's log in insertion order;
//   - (account_id, created_at, auditable_type): an account's log by time,
//     and its rows of one type counted from the index alone (the page
//     counts of the httpapi package, by time or not);
//   - (associated_type, associated_id): a runbook's steps' rows;
//   - (account_id, transaction_id, id): an account's log in commit order,
//     for the polling cursor of the httpapi package;
//   - (account_id, user_id, created_at): one actor's changes by time, for
//     the user_id filter of the httpapi package.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Audit{}, &AccountStatus{}, &AccountGap{}); err != nil {
		return fmt.Errorf("audit: migrate: %w", err)
	}
	if dialect.Of(db).SingleStatementCapture() {
		if err := db.WithContext(ctx).Exec(auditsql.CreateNextVersionFunction()).Error; err != nil {
			return fmt.Errorf("audit: migrate: create gormaudit_next_version: %w", err)
		}
		if err := db.WithContext(ctx).Exec(pgfuse.RefuseFunction).Error; err != nil {
			return fmt.Errorf("audit: migrate: create gormaudit_refuse: %w", err)
		}
		if err := db.WithContext(ctx).Exec(pgfuse.RefuseChangeFunction).Error; err != nil {
			return fmt.Errorf("audit: migrate: create gormaudit_refuse_change: %w", err)
		}
	}
	return nil
}
