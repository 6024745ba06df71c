// Package pgfuse renders, once per audited model, the PostgreSQL that makes
// a write and its audit rows one statement: the audited_changes of the rows
// a statement wrote, built inside the database exactly as the audit
// package's Go encoder builds them, the checks that refuse the values the
// encoder refuses, and the shape of the statements that carry them.
//
// It knows models only by their column descriptions ([Model], [Column]),
// so it does not import the audit package; audit describes each registered
// model, calls [Build] at registration, and writes the statements with
// [Capture.WriteSnapshotStatement] and [Capture.WriteUpdateStatement],
// supplying the change's own SQL and the audit INSERT (internal/auditsql's).
// A model with a column PostgreSQL cannot render as the encoder does has no
// Capture and keeps the two-statement path.
//
// The statements call two functions the audit package's Migrate creates
// ([RefuseFunction], [RefuseChangeFunction]); the SQLSTATE codes they raise
// ([CodeValue], [CodeKeyChange], [CodeAccountMove]) let the caller turn a
// refusal back into its typed error by code.
package pgfuse
