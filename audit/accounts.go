package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AccountsTableName is the table that records which accounts have auditing
// enabled (see [Config.EnabledAccountsOnly]).
const AccountsTableName = "audit_accounts"

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

// ErrAccountNotFound is returned by [Account] for an account that was never
// enabled.
var ErrAccountNotFound = errors.New("audit: account has never had auditing enabled")

// EnableAccount turns auditing on for accountID from now on. Enabling an
// enabled account changes nothing, and keeps its EnabledAt. If db uses the
// plugin, this process records the account's writes from the next one;
// other processes within their [Config.AccountRefresh].
func EnableAccount(ctx context.Context, db *gorm.DB, accountID int64) (AccountStatus, error) {
	return setAccount(ctx, db, accountID, true)
}

// DisableAccount turns auditing off for accountID. Existing audit rows stay.
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
		q := tx
		if tx.Dialector.Name() == "postgres" {
			q = tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
		}
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
		default:
			s.Enabled, s.DisabledAt = false, &now
		}
		return tx.Select("*").Save(&s).Error
	})
	if err != nil {
		return AccountStatus{}, fmt.Errorf("audit: set account %d enabled=%v: %w", accountID, enable, err)
	}
	if p, ok := FromDB(db); ok {
		p.accounts.set(accountID, s)
	}
	return s, nil
}

// accountCache is the plugin's copy of the enabled accounts. It is replaced
// whole, never mutated, so writers read it without locks.
type accountCache struct {
	ttl  time.Duration
	snap atomic.Pointer[accountSnapshot]
}

type accountSnapshot struct {
	loaded  time.Time
	enabled map[int64]time.Time // account → enabled at
}

// enabled returns the enabled accounts, re-reading them through db (in the
// write's own transaction) when the copy is older than the TTL.
func (c *accountCache) enabled(db *gorm.DB, now time.Time) (map[int64]time.Time, error) {
	if s := c.snap.Load(); s != nil && now.Sub(s.loaded) < c.ttl {
		return s.enabled, nil
	}
	var rows []AccountStatus
	err := db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).
		Where("enabled = ?", true).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read enabled accounts (did you run audit.Migrate?): %w", err)
	}
	enabled := make(map[int64]time.Time, len(rows))
	for _, r := range rows {
		enabled[r.AccountID] = r.EnabledAt
	}
	c.snap.Store(&accountSnapshot{loaded: now, enabled: enabled})
	return enabled, nil
}

// set applies a change made through this process at once.
func (c *accountCache) set(accountID int64, s AccountStatus) {
	for {
		old := c.snap.Load()
		if old == nil {
			return // nothing cached: the next write reads the table
		}
		next := &accountSnapshot{loaded: old.loaded, enabled: maps.Clone(old.enabled)}
		if s.Enabled {
			next.enabled[accountID] = s.EnabledAt
		} else {
			delete(next.enabled, accountID)
		}
		if c.snap.CompareAndSwap(old, next) {
			return
		}
	}
}
