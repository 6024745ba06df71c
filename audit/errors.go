package audit

import (
	"errors"
	"fmt"
	"strings"
)

// Every error of the package is here: the sentinels callers match with
// errors.Is, the typed errors that carry the details (matched with
// errors.As, each matching its sentinel), and the unexported values the
// encoder, the JSON splitter and the recorder refuse with.

// ErrNoActor is returned by a write when [Config.RequireActor] is set and the
// write's context carries no [Actor]. The write is rolled back.
var ErrNoActor = errors.New("audit: no actor in the write's context (use audit.WithActor)")

// ErrUnsupportedWrite is returned for a write to an audited model in a form
// whose effect the plugin cannot observe, such as a create from a map. The
// write is rolled back rather than silently left unaudited.
var ErrUnsupportedWrite = errors.New("audit: write form cannot be audited")

// ErrVersionConflict is wrapped by a [*WriteError] when another transaction
// recorded a version of the record first. Under READ COMMITTED the
// plugin's row locks prevent it; in a REPEATABLE READ or SERIALIZABLE
// transaction, whose snapshot can predate a concurrent write of the same
// record (such as re-creating a record another transaction just deleted),
// it is a serialization failure: roll back and retry. The database's own
// error stays in the chain (on PostgreSQL, SQLSTATE 40001 when the
// record's version counter or row moved after the snapshot).
var ErrVersionConflict = errors.New("audit: another transaction recorded this version of the record first; retry the transaction")

// ConfigError reports an invalid [Config]; Field names the offending setting.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("audit: config %s: %s", e.Field, e.Reason)
}

// WriteError reports that audit rows for a change could not be written. The
// change itself is rolled back with the transaction it ran in.
type WriteError struct {
	// Type is the auditable type whose rows failed.
	Type string
	// Action is the audited action.
	Action Action
	// Err is the underlying database or encoding error.
	Err error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("audit: write %s audit for %s: %v", e.Action, e.Type, e.Err)
}

// Unwrap returns the underlying error.
func (e *WriteError) Unwrap() error { return e.Err }

var errNotInTransaction = errors.New("the write is not in a transaction; audited models need gorm's default transaction (do not set SkipDefaultTransaction) or an explicit db.Transaction")

// ErrAccountMove is returned (inside a [*WriteError], as an
// [*AccountMoveError]) for a write that would move a record to another
// account. Moves are refused before anything is written: each account's log
// must tell the whole story of its records, and a record's history is filed
// under one account. To move a record, destroy it and create it anew in the
// other account.
var ErrAccountMove = errors.New("audit: a record cannot move to another account")

// AccountMoveError reports a refused account move. It matches
// [ErrAccountMove].
type AccountMoveError struct {
	Ref      Ref
	From, To int64
}

func (e *AccountMoveError) Error() string {
	return fmt.Sprintf("%v: %s from account %d to %d", ErrAccountMove, e.Ref, e.From, e.To)
}

// Is makes errors.Is(err, ErrAccountMove) true.
func (e *AccountMoveError) Is(target error) bool { return target == ErrAccountMove }

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

// ErrUnsupportedValue is matched (with errors.Is) by every [*ValueError]:
// a write whose value cannot be recorded exactly was refused.
var ErrUnsupportedValue = errors.New("audit: value cannot be recorded")

// ValueError reports a column value that audited_changes cannot record
// exactly, such as NaN, a string that is not valid UTF-8, a JSON document
// null or one nested deeper than [MaxNestingDepth]. A write is refused with
// it (wrapped in a [*WriteError]) before anything is written, or rolled back
// with its transaction.
type ValueError struct {
	// Column is the column's name, empty when the value was checked on
	// its own (see [CheckNesting]).
	Column string
	// Reason says what is wrong with the value and what to store instead.
	Reason string
}

func (e *ValueError) Error() string {
	if e.Column == "" {
		return "audit: value cannot be recorded: " + e.Reason
	}
	return fmt.Sprintf("audit: value of %s cannot be recorded: %s", e.Column, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupportedValue) true.
func (e *ValueError) Is(target error) bool { return target == ErrUnsupportedValue }

// The reasons the encoder refuses a value with, beyond those it words
// from the value itself.
var errNotUTF8 = &ValueError{Reason: "text is not valid UTF-8; store binary data in a []byte (bytea, blob) column"}

var errJSONNull = &ValueError{Reason: "a JSON column's document null cannot be told apart from SQL NULL in audited_changes; store SQL NULL instead"}

// ErrAccountNotFound is returned by [Account] for an account that was never
// enabled.
var ErrAccountNotFound = errors.New("audit: account has never had auditing enabled")

// errNotObject is what the audited_changes splitter refuses text that is
// not a JSON object with.
var errNotObject = errors.New("not a JSON object")
