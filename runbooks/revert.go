package runbooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
)

// ErrRunbookAbsent is returned by [Revert] for a moment at which the runbook
// did not exist (before its creation, or while it was hard-deleted).
// Nothing is written.
var ErrRunbookAbsent = errors.New("runbooks: the runbook did not exist at that moment")

// Revert puts runbook runbookID and its steps back as they were at moment t,
// all in one transaction, through gorm so that every change is audited with
// the context's actor and a comment naming t:
//
//   - the runbook's and the steps' changed columns, positions included, are
//     written back;
//   - steps added since t are discarded;
//   - steps discarded since t are undiscarded, and steps deleted since t are
//     re-inserted with their primary keys;
//   - steps moved to another runbook since t move back.
//
// Either every record is reverted or, on any error, none is. The rebuild
// reads the runbook's and its steps' rows and histories with a constant
// number of SQL statements, however many steps and versions there are; then
// one write is made per record that differs.
//
// opts are those of audit.RevertAllAsOf: audit.DryRun to preview the
// changes ({column: [current, reverted]} per record) without writing,
// audit.InAccount to refuse another account's runbook, audit.SkipSchemaDrift,
// audit.ReportTo. See audit.Revert for what a revert cannot restore
// (redacted columns, a step's rules and conditions after a hard delete).
func Revert(ctx context.Context, db *gorm.DB, runbookID string, t time.Time, opts ...audit.Option) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockRunbook(tx, runbookID); err != nil {
			return err
		}
		rb, err := audit.StateAsOf(ctx, tx, TypeRunbook, runbookID, t, opts...)
		if err != nil {
			return err
		}
		if !rb.Exists {
			return ErrRunbookAbsent
		}
		refs, err := recordsOf(tx, runbookID)
		if err != nil {
			return err
		}
		return audit.RevertAllAsOf(ctx, tx, refs, t, opts...)
	})
	if err != nil {
		return fmt.Errorf("runbooks: revert runbook %s to %s: %w", runbookID, t.UTC().Format(time.RFC3339Nano), err)
	}
	return nil
}

// lockRunbook keeps the runbook's set of steps still while it is reverted.
// On PostgreSQL, adding a step to a runbook (or moving one into it) takes a
// FOR KEY SHARE lock on the runbook's row through the steps' foreign key;
// FOR UPDATE conflicts with it. So steps being added now commit before the
// revert lists the runbook's steps, and steps added from now on wait until
// the revert has committed. SQLite has a single writer and needs no lock.
func lockRunbook(tx *gorm.DB, runbookID string) error {
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	var ids []string
	return tx.Model(&Runbook{}).Unscoped().Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
		Where("id = ?", runbookID).Pluck("id", &ids).Error
}

// RevertToVersion is [Revert] to the moment of the runbook's own audit
// version version: the runbook as that version left it, with its steps as
// they were at that moment. A version outside the runbook's history returns
// an error matching audit.ErrVersionNotFound.
func RevertToVersion(ctx context.Context, db *gorm.DB, runbookID string, version int, opts ...audit.Option) error {
	st, err := audit.StateAt(ctx, db, TypeRunbook, runbookID, version, opts...)
	if err != nil {
		return fmt.Errorf("runbooks: revert runbook %s to version %d: %w", runbookID, version, err)
	}
	desc := fmt.Sprintf("revert to runbook version %d", version)
	return Revert(ctx, db, runbookID, st.At, append([]audit.Option{audit.RevertComment(desc)}, opts...)...)
}

// recordsOf lists the runbook and every step that belongs or belonged to it:
// its current steps, discarded ones included, and the steps whose audit rows
// name it (deleted ones, and ones moved away). The runbook comes first, so
// that a re-inserted runbook exists before its steps.
func recordsOf(tx *gorm.DB, runbookID string) ([]audit.Ref, error) {
	var current, audited []string
	if err := tx.Model(&Step{}).Unscoped().Where("runbook_id = ?", runbookID).Order("id").Pluck("id", &current).Error; err != nil {
		return nil, fmt.Errorf("runbooks: list steps: %w", err)
	}
	if err := tx.Model(&audit.Audit{}).Distinct("auditable_id").
		Where("associated_type = ? AND associated_id = ? AND auditable_type = ?", TypeRunbook, runbookID, TypeStep).
		Order("auditable_id").Pluck("auditable_id", &audited).Error; err != nil {
		return nil, fmt.Errorf("runbooks: list audited steps: %w", err)
	}
	refs := []audit.Ref{{Type: TypeRunbook, ID: runbookID}}
	seen := map[string]bool{}
	for _, id := range append(current, audited...) {
		if !seen[id] {
			seen[id] = true
			refs = append(refs, audit.Ref{Type: TypeStep, ID: id})
		}
	}
	return refs, nil
}
