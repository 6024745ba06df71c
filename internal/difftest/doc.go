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
