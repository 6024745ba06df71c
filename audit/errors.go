package audit

import (
	"errors"
	"fmt"
)

// ErrNoActor is returned by a write when [Config.RequireActor] is set and the
// write's context carries no [Actor]. The write is rolled back.
var ErrNoActor = errors.New("audit: no actor in the write's context (use audit.WithActor)")

// ErrUnsupportedWrite is returned for a write to an audited model in a form
// whose effect the plugin cannot observe, such as a create from a map. The
// write is rolled back rather than silently left unaudited.
var ErrUnsupportedWrite = errors.New("audit: write form cannot be audited")

// ErrVersionConflict is wrapped by a [*WriteError] when another transaction
// recorded the same version of the record first. Under READ COMMITTED the
// plugin's row locks prevent it; in a REPEATABLE READ or SERIALIZABLE
// transaction, whose snapshot can predate a concurrent write of the same
// record (such as re-creating a record another transaction just deleted),
// it plays the part of a serialization failure: roll back and retry.
var ErrVersionConflict = errors.New("audit: another transaction recorded this version of the record first; retry the transaction")

// ErrAccountMove is wrapped by a [*WriteError] when an update would move a
// record to another account (change its account column). Such a move is
// refused before anything is written: filed under one account only, it
// would leave the other account's log unable to explain the record's
// appearance or disappearance, and gating could record one side of it and
// not the other. Move a record by destroying it in one account and
// creating it in the other.
var ErrAccountMove = errors.New("audit: a record cannot move to another account")

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
