// Package difftest is a differential tester of the audit plugin: it
// compares the database with its replayed audit log (issue 9).
//
// A seeded generator ([Generate]) draws sequences of write statements from
// a named table of write forms (ops.go: the forms audit/writes_test.go
// covers and the findings 1–13, each tagged with its number), over
// runbooks.Runbook, runbooks.Step and two test models with
// database-assigned integer keys ([Sample], on the plugin's portable path,
// and [Gauge], on its one-statement path on PostgreSQL), with values drawn
// from the classes (invalid UTF-8, non-UTF-8 and 0x00 bytes, JSON
// null vs SQL NULL, sub-microsecond times, NaN and ±Inf, JSON nested 10,000
// deep). Statements run alone or in caller transactions that commit, roll
// back, swallow errors, swallow a failed audit (a trigger refuses the
// audit insert), or roll back to a savepoint.
//
// # What it checks
//
// Around every statement it reads every audited row and every audit row
// through the same connection or transaction, in one canonical form per
// column kind that rounds nothing, and requires exactly one of two
// outcomes: the statement failed and changed nothing, or each record whose
// audited columns changed got its next version, filed under its account
// and runbook, whose replay on the row before gives the row after (an
// account move must be seen by both accounts), and no other record got a
// row. After each unit it requires the committed database to be what the
// transaction last saw (or, rolled back, what it started from), replays
// every record's whole history forward (versions 1..n, replay = row, no row
// without history, nothing in an account not recorded) and compares
// audit.StateAt at each new version with the replay. At the end of a run
// the runbook and step rows must all be returned by the HTTP listing
// (unfiltered and filtered by record) and delivered by the notifier.
//
// # The shadow log
//
// The database itself is a second oracle: row triggers on every audited
// table, installed in the test database only (shadow.go: plpgsql with
// to_jsonb(OLD) and to_jsonb(NEW) on PostgreSQL; on SQLite a json_object
// of the table's columns, listed with PRAGMA table_info), append each
// inserted, updated or deleted row, before and after, to difftest_shadow
// with a serial id. Rolled-back changes vanish with their transaction or
// savepoint; a record's changes are serialized by its row lock, so the ids
// give its change order also under concurrent writers. For each record,
// its committed changes that touched an audited column (old and new
// compared as the database renders them: an insert is a create, a delete
// or an update that only sets discarded_at a destroy, any other an update)
// must match its audit rows one to one, in order: the same action, for an
// update the same set of changed columns, filed under the record's account
// at that change; no row for a rolled-back change, for an update that
// changed no audited column, or for an account that is not recorded (gated
// runs enable accounts only in transactions that roll back, so the
// recorded set is fixed). Sequential runs check this after every unit,
// reading the shadow rows added since the last; TestDifferentialConcurrent
// checks it at the end, with the replay, versions 1..n, StateAt and the
// readers, after 8 concurrent writers and the racing upserts (an upsert
// that did nothing must have no row, one that updated exactly one update
// row). TestShadowOracleCatchesTampering shows it fails on a missing row,
// a row filed under another account, and a phantom update followed by its
// undo, which replay alone accepts.
// A failure is shrunk by delta debugging on fresh databases and reported
// with its seed and the shortest sequence found, statement by statement.
//
// # Running it
//
//	go test ./internal/difftest/ -run TestDifferential -v
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test -race ./internal/difftest/
//	go test ./internal/difftest/ -run '^$' -fuzz FuzzDifferential -fuzztime 60s
//
// DIFFTEST_SEED=n reruns one seed.
// TestDifferentialForms runs each form on its own and logs its outcomes.
// gorm's clock is set to whole microseconds so that only the value-class
// ops probe sub-microsecond times.
package difftest
