package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// AccountsTableName is the table that records which accounts have auditing
// enabled (see [Config.EnabledAccountsOnly]).
const AccountsTableName = auditsql.AccountsTable

// GapsTableName is the table of the periods during which an account that
// had auditing enabled was not recorded (see [AccountGap]).
const GapsTableName = "audit_account_gaps"

// AccountStatus is whether one account has auditing enabled, and since when.
type AccountStatus struct {
	AccountID int64 `gorm:"primaryKey;autoIncrement:false" json:"account_id"`
	Enabled   bool  `gorm:"not null;index" json:"enabled"`
	// EnabledAt is when auditing was last enabled; audit rows of the
	// account start at this moment.
	EnabledAt time.Time `gorm:"not null" json:"enabled_at"`
	// DisabledAt is when auditing was last disabled, nil while enabled.
	DisabledAt *time.Time `json:"disabled_at"`
}

// TableName implements gorm's Tabler.
func (AccountStatus) TableName() string { return AccountsTableName }

// AccountGap is a period during which an account was not recorded although
// it had been recorded before: from a [DisableAccount] to the next
// [EnableAccount]. Changes made in it left no audit rows, so a record's
// state cannot be rebuilt across it (see [ErrHistoryGap]). The time before
// an account is first enabled is not a gap: a history that starts late
// still rebuilds.
type AccountGap struct {
	ID        int64 `gorm:"primaryKey;autoIncrement" json:"-"`
	AccountID int64 `gorm:"not null;index" json:"account_id"`
	// From is when auditing was disabled.
	From time.Time `gorm:"column:disabled_at;not null" json:"from"`
	// To is when auditing was enabled again; nil while it is disabled.
	To *time.Time `gorm:"column:enabled_at" json:"to"`
}

// TableName implements gorm's Tabler.
func (AccountGap) TableName() string { return GapsTableName }

// String describes the gap, for error messages.
func (g AccountGap) String() string {
	to := "now"
	if g.To != nil {
		to = g.To.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("account %d was not recorded from %s to %s", g.AccountID, g.From.UTC().Format(time.RFC3339Nano), to)
}

// EnableAccount turns auditing on for accountID. Enabling an enabled
// account changes nothing, and keeps its EnabledAt. Whether a write is
// recorded is decided by the database when the write's audit rows are
// inserted, so enabling takes effect when the transaction that enables
// commits (db may be a transaction), for every process at once, and not at
// all if it rolls back.
func EnableAccount(ctx context.Context, db *gorm.DB, accountID int64) (AccountStatus, error) {
	return setAccount(ctx, db, accountID, true)
}

// DisableAccount turns auditing off for accountID, from the commit of the
// transaction that disables it. Existing audit rows stay. The period until
// it is enabled again is kept as an [AccountGap].
func DisableAccount(ctx context.Context, db *gorm.DB, accountID int64) (AccountStatus, error) {
	return setAccount(ctx, db, accountID, false)
}

// Account returns the auditing status of accountID, or [ErrAccountNotFound].
func Account(ctx context.Context, db *gorm.DB, accountID int64) (AccountStatus, error) {
	var s AccountStatus
	err := db.WithContext(ctx).Where("account_id = ?", accountID).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return AccountStatus{}, ErrAccountNotFound
	}
	if err != nil {
		return AccountStatus{}, fmt.Errorf("audit: read account %d: %w", accountID, err)
	}
	return s, nil
}

func setAccount(ctx context.Context, db *gorm.DB, accountID int64, enable bool) (AccountStatus, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if p, ok := FromDB(db); ok {
		now = p.cfg.Now().UTC().Truncate(time.Millisecond)
	}
	var s AccountStatus
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := dialect.Of(tx).ForUpdate(tx)
		// Find, not Take: a missing row is expected, not an error to log.
		res := q.Where("account_id = ?", accountID).Limit(1).Find(&s)
		err := res.Error
		switch {
		case err == nil && res.RowsAffected == 0:
			if !enable {
				s = AccountStatus{AccountID: accountID} // never enabled: nothing to record
				return nil
			}
			s = AccountStatus{AccountID: accountID, Enabled: true, EnabledAt: now}
			return tx.Create(&s).Error
		case err != nil:
			return err
		case s.Enabled == enable:
			return nil
		case enable:
			s.Enabled, s.EnabledAt, s.DisabledAt = true, now, nil
			// Gaps are ended by the enable that follows them: at most one is open.
			if err := tx.Model(&AccountGap{}).Where("account_id = ? AND enabled_at IS NULL", accountID).
				Update("enabled_at", now).Error; err != nil {
				return err
			}
		default:
			s.Enabled, s.DisabledAt = false, &now
			if err := tx.Create(&AccountGap{AccountID: accountID, From: now}).Error; err != nil {
				return err
			}
		}
		return tx.Select("*").Save(&s).Error
	})
	if err != nil {
		return AccountStatus{}, fmt.Errorf("audit: set account %d enabled=%v: %w", accountID, enable, err)
	}
	return s, nil
}

// loadGaps reads the gaps of the accounts of hs's records (those of their
// current rows and of their audit rows) with one statement per 500 accounts.
func loadGaps(q *gorm.DB, hs []*history) error {
	seen := map[int64]bool{}
	for _, h := range hs {
		for _, id := range h.accounts() {
			seen[id] = true
		}
	}
	ids := slices.Sorted(maps.Keys(seen))
	byAccount := map[int64][]AccountGap{}
	for start := 0; start < len(ids); start += loadBatch {
		var gaps []AccountGap
		if err := q.Where("account_id IN ?", ids[start:min(start+loadBatch, len(ids))]).Order("disabled_at").
			Find(&gaps).Error; err != nil {
			return fmt.Errorf("audit: read account gaps (did you run audit.Migrate?): %w", err)
		}
		for _, g := range gaps {
			byAccount[g.AccountID] = append(byAccount[g.AccountID], g)
		}
	}
	for _, h := range hs {
		for _, id := range h.accounts() {
			h.gaps = append(h.gaps, byAccount[id]...)
		}
	}
	return nil
}

// forever stands for "up to now" as the end of a period.
var forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// gapWithin returns a gap of the record's accounts that overlaps the period
// from..to, bounds included: audit rows are stamped to the millisecond, so
// a gap ending in a row's millisecond may have ended after it.
func (h *history) gapWithin(from, to time.Time) *AccountGap {
	for i := range h.gaps {
		g := &h.gaps[i]
		if !g.From.After(to) && (g.To == nil || !g.To.Before(from)) {
			return g
		}
	}
	return nil
}
