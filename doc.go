// Package gormaudit is audited persistence for GORM on PostgreSQL and SQLite:
// a trustworthy, versioned change history of your records, written in the
// same transaction as every change.
//
// The module is made of these packages:
//
//   - [github.com/gormaudit/gormaudit/audit], the engine: a gorm plugin that
//     records every create, update and delete of registered models as audit
//     rows in the well-known audit-row format ({column: value} on create and
//     destroy, {column: [old, new]} on update), with versions, actors,
//     comments, request metadata and per-account enablement.
//   - [github.com/gormaudit/gormaudit/runbooks], the runbook and step models
//     ("Runbooks::Runbook", "Runbooks::Step") and their registrations.
//   - [github.com/gormaudit/gormaudit/httpapi], the embeddable HTTP handler
//     that lists the audit log to an account's bot users;
//     [github.com/gormaudit/gormaudit/httpapi/client], the Go client of that
//     endpoint, which links no database code; and
//     [github.com/gormaudit/gormaudit/httpapi/webhook], signed webhooks that
//     push new audit rows to subscribers.
//
// A minimal program:
//
//	db, _ := gorm.Open(postgres.Open(dsn), &gorm.Config{})
//	_ = db.Use(audit.New(audit.Config{Models: runbooks.Models()}))
//	_ = audit.Migrate(ctx, db)
//	ctx = audit.WithActor(ctx, audit.Actor{ID: userID, Type: "User"})
//	db.WithContext(ctx).Create(&step) // one audit row: version 1, action "create"
//
// # How it works
//
// A write. db.Use(audit.New(cfg)) wraps gorm's create, update and delete
// callbacks (audit/plugin.go); every other statement goes to gorm's own. For
// a registered model the plugin first decides which table the statement
// really writes (audit/capture_target.go: a write that reaches an audited
// table without its model is refused) and checks the values it can see
// (audit/encode.go). Then (audit/capture_create.go, capture_update.go,
// capture_delete.go):
//   - on PostgreSQL, the INSERT, the locking UPDATE or the DELETE becomes one
//     statement whose data-modifying CTE also inserts the audit rows, their
//     audited_changes rendered by PostgreSQL (audit/capture_single.go, with
//     the SQL built once per model by internal/pgfuse; the audits table's
//     SQL is in internal/auditsql, every dialect decision in
//     internal/dialect);
//   - otherwise the write runs with RETURNING every column, its rows are
//     encoded in Go (audit/encode.go) and the audit rows are inserted
//     (audit/recorder.go). In a caller's transaction the write runs inside
//     a savepoint (audit/savepoint.go) and is rolled back to it if that
//     fails; in the transaction GORM begins for the write alone, GORM rolls
//     it all back.
//
// Either way the audit rows are in the write's transaction, versioned per
// record under the record's row lock, and gated by the audit_accounts table
// inside the same INSERT.
//
// A list request. httpapi.Handler authenticates the bot token (httpapi/auth.go,
// tokens.go), parses and validates the query (query.go), and reads one page
// or one stretch of the polling stream of the caller's account
// (list.go → httpapi/internal/auditlist → internal/auditsql), rendering each
// audit.Audit in the hosted row format. The webhook notifier
// (httpapi/webhook) reads the same stream through the same code, and the Go
// client (httpapi/client) only speaks HTTP.
//
// A revert. runbooks.RevertToAudit (or audit.Revert and relatives) locks the
// runbook, loads the current rows and the audit rows after the point
// (audit/load.go, internal/auditsql), walks each record back by undoing
// later rows (audit/walk.go), refusing a gap (ErrHistoryGap) or a schema
// drift, and writes the differences through gorm (audit/revert.go), so the
// revert is itself audited like any write.
package gormaudit
