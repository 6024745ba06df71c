package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/internal/auditsql"
)

// HorizonsTableName is the table that records, per account, how far
// [Prune] has removed audit rows (see [Horizon]).
const HorizonsTableName = "audit_horizons"

// Horizon is how far [Prune] removed an account's audit rows: rows created
// before Before may be gone, and every removed row had an id of at most
// ThroughID. Prune records it, in the transaction that deletes rows (or
// before it detaches a partition), so that history and revert never take
// a removed row for one that never existed: a point of a record's history
// that needs a removed row is refused with [ErrHistoryGap] (see
// [HistoryError].Horizon). Horizons only grow.
type Horizon struct {
	AccountID int64 `gorm:"primaryKey;autoIncrement:false" json:"account_id"`
	// Before is the latest cutoff applied to the account.
	Before time.Time `gorm:"column:pruned_before;not null" json:"before"`
	// ThroughID is the greatest id of a removed row of the account.
	ThroughID int64 `gorm:"column:pruned_through_id;not null" json:"through_id"`
}

// TableName implements gorm's Tabler.
func (Horizon) TableName() string { return HorizonsTableName }

// String describes the horizon, for error messages.
func (h Horizon) String() string {
	return fmt.Sprintf("account %d's audit rows created before %s were pruned", h.AccountID,
		h.Before.UTC().Format(time.RFC3339Nano))
}

// AccountHorizon returns the horizon of accountID, or false when none of
// its audit rows was ever pruned.
func AccountHorizon(ctx context.Context, db *gorm.DB, accountID int64) (Horizon, bool, error) {
	var hs []Horizon
	if err := db.WithContext(ctx).Where("account_id = ?", accountID).Limit(1).Find(&hs).Error; err != nil {
		return Horizon{}, false, fmt.Errorf("audit: read the horizon of account %d: %w", accountID, err)
	}
	if len(hs) == 0 {
		return Horizon{}, false, nil
	}
	return hs[0], true, nil
}

// recordHorizons raises the horizons of the accounts of removed (account
// id → greatest removed id) to the cutoff cutoffOf gives each, and their
// ThroughID to that id, in tx.
func recordHorizons(tx *gorm.DB, removed map[int64]int64, cutoffOf func(int64) time.Time) error {
	if len(removed) == 0 {
		return nil
	}
	rows := make([]Horizon, 0, len(removed))
	for _, acct := range slices.Sorted(maps.Keys(removed)) {
		rows = append(rows, Horizon{AccountID: acct, Before: cutoffOf(acct).UTC(), ThroughID: removed[acct]})
	}
	greatest := func(col string) clause.Assignment {
		// CASE rather than GREATEST: SQLite has no GREATEST, and times
		// stored in UTC compare in order on both databases.
		return clause.Assignment{Column: clause.Column{Name: col}, Value: gorm.Expr(
			"CASE WHEN excluded." + col + " > " + HorizonsTableName + "." + col + " THEN excluded." + col +
				" ELSE " + HorizonsTableName + "." + col + " END")}
	}
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "account_id"}},
		DoUpdates: clause.Set{greatest("pruned_before"), greatest("pruned_through_id")}}).
		CreateInBatches(&rows, 500).Error
	if err != nil {
		return fmt.Errorf("audit: record retention horizons (did you run audit.Migrate?): %w", err)
	}
	return nil
}

// needsHorizon reports whether the point of h lies before every loaded
// audit row of a record whose history does not start at version 1, or
// which has a row and no audit row: whether rows the point needs may have
// been pruned.
func (h *history) needsHorizon() bool {
	n := len(h.rows)
	switch {
	case n > 0 && h.rows[n-1].Version == 1, n == 0 && !h.curExists:
		return false
	case h.pt.byTime:
		return n == 0 || h.rows[n-1].CreatedAt.After(h.pt.at)
	case h.pt.byAudit:
		return n == 0 || h.rows[n-1].ID > h.pt.auditID
	}
	return false
}

// loadHorizons reads, with one statement, the horizons of the accounts of
// the histories that need them (see needsHorizon).
func loadHorizons(q *gorm.DB, hs []*history) error {
	var need []*history
	seen := map[int64]bool{}
	for _, h := range hs {
		if h.needsHorizon() {
			need = append(need, h)
			for _, id := range h.accounts() {
				seen[id] = true
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	var rows []Horizon
	if err := q.Where("account_id IN ?", slices.Sorted(maps.Keys(seen))).Find(&rows).Error; err != nil {
		return fmt.Errorf("audit: read retention horizons (did you run audit.Migrate?): %w", err)
	}
	for _, h := range need {
		h.horizonRead = true
		for _, r := range rows {
			if slices.Contains(h.accounts(), r.AccountID) && (h.horizon == nil || r.Before.After(h.horizon.Before)) {
				h.horizon = &r
			}
		}
	}
	return nil
}

// beforeRows returns the version current at h's point when no loaded
// audit row lies at or before it. With the record's whole history loaded
// (it starts at version 1), or none recorded and none pruned, that is 0:
// before its history. When rows were pruned, the point must lie after
// every removed row (after the horizon), where the state is the one the
// loaded rows start from: version first-1, or with no row left the
// record's latest version; otherwise the state is lost and the call fails
// with ErrHistoryGap.
func (h *history) beforeRows() (int, error) {
	if !h.needsHorizon() {
		return 0, nil
	}
	n := len(h.rows)
	hz := h.horizon
	if hz == nil && n == 0 {
		return 0, nil // never recorded, nothing pruned: history starts later
	}
	prev := 0
	if n > 0 {
		prev = h.rows[n-1].Version - 1
	}
	if hz != nil && ((h.pt.byTime && !h.pt.at.Before(hz.Before)) || (h.pt.byAudit && h.pt.auditID >= hz.ThroughID)) {
		if n == 0 {
			v, _, err := auditsql.LatestVersion(h.q, h.Type, h.ID)
			return v, readError(h.Ref, err)
		}
		return prev, nil
	}
	reason := fmt.Sprintf("the audit rows before version %d are missing", prev+1)
	if hz != nil {
		reason = "the point is before the retention horizon: the audit rows it needs were pruned"
	}
	return 0, &HistoryError{Ref: h.Ref, Version: prev, Reason: reason, Horizon: hz}
}

// missingVersion is the error for version v of h not loaded: a
// [*HistoryError] when v was recorded and its row removed (pruned), a
// [*VersionError] when it was never recorded.
func (h *history) missingVersion(v int) error {
	first, last, err := h.bounds(h.q)
	if err != nil {
		return err
	}
	switch {
	case v >= 1 && first > 1 && v < first:
		hz, _, err := h.accountHorizon()
		if err != nil {
			return err
		}
		return &HistoryError{Ref: h.Ref, Version: v, Horizon: hz,
			Reason: fmt.Sprintf("the audit rows before version %d were removed", first)}
	case v >= 1 && last == 0:
		latest, _, err := auditsql.LatestVersion(h.q, h.Type, h.ID)
		if err != nil {
			return readError(h.Ref, err)
		}
		if v > latest {
			break
		}
		hz, _, err := h.accountHorizon()
		if err != nil {
			return err
		}
		return &HistoryError{Ref: h.Ref, Version: v, Horizon: hz, Reason: "every audit row of the record was removed"}
	}
	return &VersionError{Ref: h.Ref, Version: v, First: first, Last: last}
}

// accountHorizon reads the horizon of the record's account, once.
func (h *history) accountHorizon() (*Horizon, bool, error) {
	if !h.horizonRead {
		for _, acct := range h.accounts() {
			hz, ok, err := AccountHorizon(h.ctx, h.q, acct)
			if err != nil {
				return nil, false, err
			}
			if ok && (h.horizon == nil || hz.Before.After(h.horizon.Before)) {
				h.horizon = &hz
			}
		}
		h.horizonRead = true
	}
	return h.horizon, h.horizon != nil, nil
}
