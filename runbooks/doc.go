// Package runbooks holds the runbook and step models of the incident
// runbook product and the runbook-level operations on their audit history.
//
// [Runbook] and [Step] are audited under the types "Runbooks::Runbook" and
// "Runbooks::Step" ([TypeRunbook], [TypeStep]); [Models] returns their
// registrations for audit.Config. A step's rules and conditions are never
// audited, and a step's audit rows are associated with its runbook, so that
// a runbook's history includes its steps'. Deleting either discards it (sets
// discarded_at) and is audited as a destroy.
//
// Step durations are ISO 8601 ([Duration], "PT0S") and its configuration is
// a JSON document ([JSON]), stored as jsonb on PostgreSQL.
//
// # Revert
//
// [Revert] puts a runbook and all its steps back as they were at a moment,
// [RevertToVersion] as of one of the runbook's versions (its steps as they
// were while the runbook was at that version), and [RevertToAudit] right
// after one of the runbook's or its steps' audit rows, in one transaction
// and through gorm, so the revert is itself audited. Versions and audit
// rows name exact points even when changes share a millisecond:
//
//	ctx = audit.WithActor(ctx, audit.Actor{ID: userID})
//	var plan audit.Plan
//	err := runbooks.Revert(ctx, db, runbookID, lastNight, &audit.RevertOptions{DryRun: true, Plan: &plan}) // preview
//	err = runbooks.Revert(ctx, db, runbookID, lastNight, nil)                                             // write
//
// Each takes an *audit.RevertOptions, nil for the defaults: a dry run, a
// plan to report into, an account to scope to, a comment.
package runbooks
