package audit

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the history and revert functions ([StateAt], [Diff],
// [Revert] and their relatives). Each is matched with errors.Is; the typed
// errors below carry the details and are matched with errors.As. When one of
// them is returned, nothing was written.
var (
	// ErrNoPlugin is returned when db has no audit plugin registered.
	ErrNoPlugin = errors.New("audit: no audit plugin registered on db (db.Use(audit.New(...)))")
	// ErrNotFound is returned for a record that has neither a row nor any
	// audit row, or whose type is not registered. See [NotFoundError].
	ErrNotFound = errors.New("audit: record not found")
	// ErrVersionNotFound is returned for a version outside a record's
	// recorded history. See [VersionError].
	ErrVersionNotFound = errors.New("audit: version not in the record's history")
	// ErrOtherAccount is returned, with [ReadOptions].AccountID set, for a
	// record of another account. See [AccountError].
	ErrOtherAccount = errors.New("audit: record belongs to another account")
	// ErrSchemaDrift is returned when rebuilding a state needs columns that
	// the model no longer audits, or audited columns the history does not
	// know. See [DriftError] and [ReadOptions].SkipSchemaDrift.
	ErrSchemaDrift = errors.New("audit: history does not match the model's audited columns")
	// ErrHistoryGap is returned when a record's audit rows do not fit its
	// current row, such as an update recorded after the row was removed
	// without a destroy audit or a current row that differs from what its
	// last audit row left, or when a rebuild would cross a period in which
	// the record's account was not recorded ([AccountGap]). See
	// [HistoryError].
	ErrHistoryGap = errors.New("audit: history does not fit the current row")
)

// Ref names one audited record: its registered auditable type and its primary
// key as text, as in an audit row's auditable_type and auditable_id.
type Ref struct {
	Type string `json:"auditable_type"`
	ID   string `json:"auditable_id"`
}

func (r Ref) String() string { return r.Type + " " + r.ID }

// NotFoundError reports a record with no history and no row, or a type that
// is not registered with the plugin. It matches [ErrNotFound].
type NotFoundError struct {
	Ref
	// UnknownType is true when Ref.Type is not a registered model.
	UnknownType bool
}

func (e *NotFoundError) Error() string {
	if e.UnknownType {
		return fmt.Sprintf("audit: %q is not a registered auditable type", e.Type)
	}
	return fmt.Sprintf("audit: %s has no row and no history", e.Ref)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// VersionError reports a version outside a record's recorded history, which
// runs from First to Last (both 0 when nothing was recorded). It matches
// [ErrVersionNotFound].
type VersionError struct {
	Ref
	Version     int
	First, Last int
}

func (e *VersionError) Error() string {
	if e.Last == 0 {
		return fmt.Sprintf("audit: %s has no recorded history (version %d asked)", e.Ref, e.Version)
	}
	return fmt.Sprintf("audit: %s has versions %d to %d, not %d", e.Ref, e.First, e.Last, e.Version)
}

// Is makes errors.Is(err, ErrVersionNotFound) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersionNotFound }

// AccountError reports, with [ReadOptions].AccountID set, a record that
// belongs to another account. It matches [ErrOtherAccount].
type AccountError struct {
	Ref
	// AccountID is the record's account; Want the one the caller is scoped to.
	AccountID, Want int64
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("audit: %s belongs to account %d, not %d", e.Ref, e.AccountID, e.Want)
}

// Is makes errors.Is(err, ErrOtherAccount) true.
func (e *AccountError) Is(target error) bool { return target == ErrOtherAccount }

// DriftError reports that a record's history and its model's audited columns
// disagree where a rebuild needs them. It matches [ErrSchemaDrift].
type DriftError struct {
	Ref
	// Removed lists columns the history changed that the model no longer
	// has or no longer audits: their old values cannot be written back.
	Removed []string
	// Added lists audited columns that a recorded snapshot lacks: their
	// values at that point are unknown.
	Added []string
}

func (e *DriftError) Error() string {
	var parts []string
	if len(e.Removed) > 0 {
		parts = append(parts, "columns no longer audited: "+strings.Join(e.Removed, ", "))
	}
	if len(e.Added) > 0 {
		parts = append(parts, "columns absent from history: "+strings.Join(e.Added, ", "))
	}
	return fmt.Sprintf("audit: %s: schema drift (%s); set audit.ReadOptions.SkipSchemaDrift to skip them", e.Ref, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrSchemaDrift) true.
func (e *DriftError) Is(target error) bool { return target == ErrSchemaDrift }

// HistoryError reports a history that cannot be trusted to rebuild a
// state: an audit row that cannot be undone from the state that follows
// it, a current row its last audit row does not explain, or a period in
// which the record's account was not recorded. It matches [ErrHistoryGap].
type HistoryError struct {
	Ref
	// Version is the version at which the history breaks.
	Version int
	Reason  string
	// Gap is the period without audit rows that the rebuild would have
	// to cross, if that is the reason.
	Gap *AccountGap
}

func (e *HistoryError) Error() string {
	if e.Gap != nil {
		return fmt.Sprintf("audit: %s version %d: %s (%s)", e.Ref, e.Version, e.Reason, e.Gap)
	}
	return fmt.Sprintf("audit: %s version %d: %s", e.Ref, e.Version, e.Reason)
}

// Is makes errors.Is(err, ErrHistoryGap) true.
func (e *HistoryError) Is(target error) bool { return target == ErrHistoryGap }
