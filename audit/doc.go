// Package audit records every create, update and delete of registered GORM
// models as versioned audit rows, in the same transaction as the change,
// and reads those rows back: a record's past states, diffs between them,
// and reverts to them.
//
// # Setup
//
// Register the plugin with the models to audit, create its tables, and put
// the actor in the context of each write:
//
//	db.Use(audit.New(audit.Config{Models: runbooks.Models()}))
//	audit.Migrate(ctx, db)
//	ctx = audit.WithActor(ctx, audit.Actor{ID: userID, Type: "User"})
//	db.WithContext(ctx).Create(&step) // → one audit row, version 1, action "create"
//
// # Audit rows
//
// Rows go to the audits table ([Audit]). Their audited_changes follow the
// well-known audit-row format:
//
//   - create and destroy: {column: value} for every audited column;
//   - update: {column: [old, new]} for the audited columns that changed.
//
// Column names are the database's, and the keys come in PostgreSQL's jsonb
// order (shorter first, then bytewise) on both databases, as in the hosted
// endpoint's rows. Each value is the one the database stores, recorded
// exactly: NULL is null; JSON columns appear as nested JSON; times are RFC
// 3339 in UTC with every stored fractional digit (microseconds on
// PostgreSQL, nanoseconds on SQLite); bytes ([]byte, bytea, blob) are a
// base64 string (standard alphabet, padded), as encoding/json writes them.
// [StateAt] decodes all of them back to the stored value. The primary key,
// created_at and updated_at are never audited; [Model].Ignore excludes more
// columns and [Model].Redact records a column's changes without its values.
// An update that changes no audited column writes no row.
//
// # Values that cannot be recorded
//
// A write whose values audited_changes could not carry exactly is refused
// with a [*ValueError] (errors.Is [ErrUnsupportedValue]), wrapped in a
// [*WriteError], and nothing is written: NaN and ±Inf; text that is not
// valid UTF-8 (use a []byte column for binary data; PostgreSQL's text
// refuses it itself); times outside the years 0001-9999; a JSON column
// holding the document null, which would read back as SQL NULL (store SQL
// NULL instead: runbooks.JSON does for an empty document), or text that is
// not JSON; a JSON document nested deeper than [MaxNestingDepth] (64)
// levels, which the clients of the audit log could not parse ([CheckNesting]
// checks a document before it is sent). On PostgreSQL's single-statement
// path, the function gormaudit_refuse, created by [Migrate], refuses the
// same values. Only new values are checked for their depth: a record still
// holding a deeper document stored before the limit can be updated and
// reverted to any state that can be written.
//
// Rows stored before the limit are still read at any depth by
// [Changes.Scan], history and revert. In their JSON form ([Audit]'s
// MarshalJSON, hence the httpapi endpoint and webhooks), a value nested
// deeper than MaxNestingDepth, or one side of an update's pair that is, is
// shown as {"$too_deep": "<its JSON text>"} ([TooDeepKey]), so that listing
// such a row never fails. In that JSON form, associated_id,
// associated_type, comment, remote_address and request_uuid are null when
// absent.
//
// A record's versions are 1 for its first audit and grow by one with each
// later audit, with no gap or duplicate even under concurrent writers: the
// record's latest version is a counter (the audit_versions table), advanced
// by the write's transaction while it holds the record's row lock, and
// undone if it rolls back; a unique index on (auditable_type, auditable_id,
// version) backs that up where the audits table is not partitioned. In a
// REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates a
// concurrent write of the same record, the write fails with
// [ErrVersionConflict], to be retried like a serialization failure.
//
// # Write forms
//
// Every write gorm performs through a registered model is audited:
// Create (one record or a slice), Save (including its upsert fallback),
// Updates with a struct or a map, Update, UpdateColumn(s), Select and Omit,
// SQL expressions (the recorded new value is what the database holds after
// the statement), batch updates and deletes with conditions (one audit row
// per affected record), soft deletes (a destroy) and Unscoped deletes. The
// old and new values come from the database itself.
//
// On PostgreSQL a write and its audit rows are one statement: the INSERT,
// the UPDATE ... FROM (SELECT ... FOR UPDATE) or the DELETE (or soft
// delete's UPDATE) returns the rows it wrote, and a data-modifying CTE of
// the same statement inserts their audit rows, with audited_changes
// rendered by PostgreSQL exactly as this package renders them in Go. The
// version comes from the record's counter, advanced by a WITH query of the
// same statement. A model with a column type PostgreSQL cannot render the same way (bytea,
// arrays, types whose JSON differs from their stored value, timestamps
// without time zone) keeps the portable path, as on SQLite: the write
// with RETURNING, then one INSERT of its audit rows.
//
// Writes that cannot be audited are refused with [ErrUnsupportedWrite]
// rather than silently left out: creates from maps, upserts that do not
// conflict on the primary key, writes that name an audited model's table
// without the model (db.Table("steps").Updates(map): use db.Model), and
// writes outside a transaction (gorm's SkipDefaultTransaction without an
// explicit db.Transaction). Raw SQL
// (db.Exec) does not go through gorm's callbacks and is not audited.
//
// # Atomicity
//
// The plugin's callbacks run inside the write's transaction (gorm's default
// transaction, or the caller's db.Transaction). If an audit row cannot be
// written, the write fails with a [*WriteError] and is rolled back.
//
// # Who, where and why
//
// [WithActor], [WithComment] and [WithRequest] put the actor, a comment and
// the request's remote address and UUID in a context; the rows of writes
// made with that context carry them. [Config].RequireActor makes a write
// without an actor fail with [ErrNoActor].
//
// # History and revert
//
// [StateAt] and [StateAsOf] rebuild a record as it was at one of its
// versions or at a moment, [Diff] compares two versions, and [Revert] (or
// [RevertAsOf], [RevertAllAsOf] for several records in one transaction)
// writes a past state back through gorm, so that the revert is audited too.
// A state is rebuilt by undoing later audits from the current row, so
// histories that start after a record was created (recording starts when
// an account is enabled) can still be used. Discarded records are
// undiscarded and hard-deleted ones re-inserted with the same primary key.
//
// The history calls take a *[ReadOptions] and the reverts a
// *[RevertOptions], nil for the defaults; the two are distinct types, so a
// revert's options cannot be passed to a history call. AccountID refuses
// other accounts' records; schema drift is reported as a [*DriftError]
// naming the columns, or skipped with SkipSchemaDrift. A revert's DryRun
// previews it into Plan as {column: [current, reverted]} per record:
//
//	var plan audit.Plan
//	err := audit.Revert(ctx, db, runbooks.TypeStep, stepID, 3, &audit.RevertOptions{
//		ReadOptions: audit.ReadOptions{AccountID: &accountID},
//		DryRun:      true,
//		Plan:        &plan,
//	})
//
// Audit rows are stamped to the millisecond, so a moment cannot tell apart
// changes made within one. [StatesAfterAudit] and [RevertAllAfterAudit]
// name a point exactly instead: right after an audit row, by its id.
//
// A rebuild never returns a state the record did not have: when the
// current row is not what the last audit row left (a change made by raw
// SQL), or when undoing would cross a period in which the record's account
// was not recorded ([AccountGap]), it fails with a [*HistoryError]
// matching [ErrHistoryGap] and nothing is written.
//
// # Enabled accounts
//
// With [Config].EnabledAccountsOnly, only accounts enabled with
// [EnableAccount] are recorded, from the moment they are enabled. The
// database decides: each audit INSERT keeps only the rows whose account is
// enabled in audit_accounts, as the writing transaction sees that table.
// So gating keeps no copy in memory and adds no query and no parameter per
// account to a write; enabling or disabling takes effect when its
// transaction commits, in every process, and not at all if it rolls back.
// The periods between a [DisableAccount] and the next [EnableAccount] are
// kept as [AccountGap]s, and a rebuild that would have to cross one is
// refused with [ErrHistoryGap].
//
// An update that would move a record to another account is refused with
// [ErrAccountMove]: each account's log must explain every record it shows.
package audit
