package runbooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// ErrRunbookAbsent is returned by [Revert] for a moment at which the runbook
// did not exist (before its creation, or while it was hard-deleted).
// Nothing is written.
var ErrRunbookAbsent = errors.New("runbooks: the runbook did not exist at that moment")

// ErrAuditNotInRunbook is returned by [RevertToAudit] for an audit row
// that does not exist or is neither the runbook's nor one of its steps'.
// Nothing is written.
var ErrAuditNotInRunbook = errors.New("runbooks: the audit row is not the runbook's or one of its steps'")

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
// Audit rows are stamped to the millisecond, so a moment cannot tell apart
// changes made within one millisecond: use [RevertToVersion] or
// [RevertToAudit] to name a point exactly.
//
// opts (nil for the defaults) are those of audit.RevertAllAsOf: DryRun to
// preview the changes ({column: [current, reverted]} per record) without
// writing, Plan to receive them, AccountID to refuse another account's
// runbook, SkipSchemaDrift, Comment. See audit.Revert for what a revert
// cannot restore (redacted columns, a step's rules and conditions after a
// hard delete).
func Revert(ctx context.Context, db *gorm.DB, runbookID string, t time.Time, opts *audit.RevertOptions) error {
	err := revertTo(ctx, db, runbookID, opts, func(tx *gorm.DB, refs []audit.Ref, opts *audit.ReadOptions) ([]*audit.State, error) {
		return audit.StatesAsOf(ctx, tx, refs, t, opts)
	}, func(tx *gorm.DB, refs []audit.Ref, opts *audit.RevertOptions) error {
		return audit.RevertAllAsOf(ctx, tx, refs, t, opts)
	})
	if err != nil {
		return fmt.Errorf("runbooks: revert runbook %s to %s: %w", runbookID, t.UTC().Format(time.RFC3339Nano), err)
	}
	return nil
}

// RevertToAudit puts runbook runbookID and its steps back as they were right
// after audit row auditID was written, as [Revert] does for a moment. The
// row must be the runbook's or one of its steps', else
// [ErrAuditNotInRunbook], or audit.ErrHistoryGap for a row audit.Prune
// removed. Audit row ids order a database's rows by
// insertion, so the point is exact even when many rows share a
// millisecond. Their comment is "revert to audit <auditID>" unless
// opts.Comment says otherwise.
func RevertToAudit(ctx context.Context, db *gorm.DB, runbookID string, auditID int64, opts *audit.RevertOptions) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ok, err := auditsql.IsOfRecordOrMember(tx, auditID, TypeRunbook, runbookID, TypeStep)
		if err != nil {
			return err
		}
		if !ok {
			return notInRunbook(ctx, tx, runbookID, auditID)
		}
		return revertAfterAudit(ctx, tx, runbookID, auditID, opts)
	})
	if err != nil {
		return fmt.Errorf("runbooks: revert runbook %s to audit %d: %w", runbookID, auditID, err)
	}
	return nil
}

// notInRunbook explains why audit row auditID is neither the runbook's nor
// one of its steps': an *audit.HistoryError (audit.ErrHistoryGap) when no
// such row exists and the runbook's account was pruned past it, so that it
// may have been one; ErrAuditNotInRunbook otherwise.
func notInRunbook(ctx context.Context, tx *gorm.DB, runbookID string, auditID int64) error {
	var accounts []int64
	if err := tx.Model(&Runbook{}).Unscoped().Where("id = ?", runbookID).Pluck("account_id", &accounts).Error; err != nil {
		return err
	}
	if len(accounts) == 0 {
		return ErrAuditNotInRunbook
	}
	hz, ok, err := audit.AccountHorizon(ctx, tx, accounts[0])
	if err != nil || !ok || auditID > hz.ThroughID {
		return cmp.Or(err, ErrAuditNotInRunbook)
	}
	exists, err := auditsql.Exists(tx, auditID)
	if err != nil || exists {
		return cmp.Or(err, ErrAuditNotInRunbook)
	}
	return &audit.HistoryError{Ref: audit.Ref{Type: TypeRunbook, ID: runbookID},
		Reason: fmt.Sprintf("audit row %d is gone: the rows up to %d were pruned", auditID, hz.ThroughID), Horizon: &hz}
}

// revertAfterAudit reverts the runbook and its steps to their state right
// after audit row auditID.
func revertAfterAudit(ctx context.Context, db *gorm.DB, runbookID string, auditID int64, opts *audit.RevertOptions) error {
	return revertTo(ctx, db, runbookID, opts, func(tx *gorm.DB, refs []audit.Ref, opts *audit.ReadOptions) ([]*audit.State, error) {
		return audit.StatesAfterAudit(ctx, tx, refs, auditID, opts)
	}, func(tx *gorm.DB, refs []audit.Ref, opts *audit.RevertOptions) error {
		return audit.RevertAllAfterAudit(ctx, tx, refs, auditID, opts)
	})
}

// revertTo runs a runbook revert in one transaction: lock the runbook,
// refuse a point at which it did not exist (states), then revert it and its
// steps (revertAll).
func revertTo(ctx context.Context, db *gorm.DB, runbookID string, opts *audit.RevertOptions,
	states func(*gorm.DB, []audit.Ref, *audit.ReadOptions) ([]*audit.State, error),
	revertAll func(*gorm.DB, []audit.Ref, *audit.RevertOptions) error) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockRunbook(tx, runbookID); err != nil {
			return err
		}
		rb, err := states(tx, []audit.Ref{{Type: TypeRunbook, ID: runbookID}}, readOptionsOf(opts))
		if err != nil {
			return err
		}
		if !rb[0].Exists {
			return ErrRunbookAbsent
		}
		refs, err := recordsOf(tx, runbookID)
		if err != nil {
			return err
		}
		return revertAll(tx, refs, opts)
	})
}

// lockRunbook keeps the runbook's set of steps still while it is reverted.
// On PostgreSQL, adding a step to a runbook (or moving one into it) takes a
// FOR KEY SHARE lock on the runbook's row through the steps' foreign key;
// FOR UPDATE conflicts with it. So steps being added now commit before the
// revert lists the runbook's steps, and steps added from now on wait until
// the revert has committed. SQLite has a single writer and needs no lock.
func lockRunbook(tx *gorm.DB, runbookID string) error {
	d := dialect.Of(tx)
	if !d.LocksRows() {
		return nil
	}
	var ids []string
	return d.ForUpdate(tx.Model(&Runbook{}).Unscoped()).Where("id = ?", runbookID).Pluck("id", &ids).Error
}

// RevertToVersion puts runbook runbookID back at its audit version
// version, with its steps as they were while the runbook was at that
// version: right before the audit row of its next version was written (by
// audit row id, exact even when versions share a millisecond), or as they
// are now if version is the latest. A version outside the runbook's history
// returns an error matching audit.ErrVersionNotFound. Otherwise it is
// [RevertToAudit] to that point, with the comment "revert to runbook
// version N" unless opts.Comment says otherwise.
func RevertToVersion(ctx context.Context, db *gorm.DB, runbookID string, version int, opts *audit.RevertOptions) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := audit.StateAt(ctx, tx, TypeRunbook, runbookID, version, readOptionsOf(opts)); err != nil {
			return err
		}
		next, ok, err := auditsql.VersionID(tx, TypeRunbook, runbookID, version+1)
		if err != nil {
			return err
		}
		auditID := int64(math.MaxInt64) // the latest version: every row so far
		if ok {
			auditID = next - 1
		}
		o := audit.RevertOptions{}
		if opts != nil {
			o = *opts
		}
		if o.Comment == "" {
			o.Comment = fmt.Sprintf("revert to runbook version %d", version)
		}
		return revertAfterAudit(ctx, tx, runbookID, auditID, &o)
	})
	if err != nil {
		return fmt.Errorf("runbooks: revert runbook %s to version %d: %w", runbookID, version, err)
	}
	return nil
}

// readOptionsOf returns the options of a revert's rebuild: nil, the
// defaults, for nil opts.
func readOptionsOf(opts *audit.RevertOptions) *audit.ReadOptions {
	if opts == nil {
		return nil
	}
	return &opts.ReadOptions
}

// recordsOf lists the runbook and every step that belongs or belonged to it:
// its current steps, discarded ones included, and the steps whose audit rows
// name it (deleted ones, and ones moved away). The runbook comes first, so
// that a re-inserted runbook exists before its steps.
func recordsOf(tx *gorm.DB, runbookID string) ([]audit.Ref, error) {
	var current []string
	if err := tx.Model(&Step{}).Unscoped().Where("runbook_id = ?", runbookID).Order("id").Pluck("id", &current).Error; err != nil {
		return nil, fmt.Errorf("runbooks: list steps: %w", err)
	}
	audited, err := auditsql.MemberIDs(tx, TypeRunbook, runbookID, TypeStep)
	if err != nil {
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
