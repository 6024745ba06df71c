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
package gormaudit
