package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// revertInput names the point to revert to: exactly one of audit_id (the
// state right after that row of the audit log: the thing a user reading the
// log has in hand), at (a moment, RFC 3339) and the record's own version
// (runbook_version on the runbook route, step_version on the step route).
// A bare "version" is refused: a runbook's version and the versions of
// its steps seen in the log are different numbers.
type revertInput struct {
	AuditID        *int64  `json:"audit_id"`
	At             *string `json:"at"`
	RunbookVersion *int    `json:"runbook_version"`
	StepVersion    *int    `json:"step_version"`
	Version        *int    `json:"version"`
	DryRun         bool    `json:"dry_run"`
}

// point checks that the input names exactly one point, with versionField
// the name of the route's own version field.
func (in *revertInput) point(versionField string) error {
	if in.Version != nil {
		return badRequest("version", `is ambiguous: give "audit_id" (a row of the audit log), "at" (a moment) or %q`, versionField)
	}
	version := in.RunbookVersion
	other, otherField := in.StepVersion, "step_version"
	if versionField == "step_version" {
		version, other, otherField = in.StepVersion, in.RunbookVersion, "runbook_version"
	}
	if other != nil {
		return badRequest(otherField, "is not a field of this route; use %q", versionField)
	}
	given := 0
	for _, set := range []bool{in.AuditID != nil, in.At != nil, version != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		return badRequest("", `give exactly one of "audit_id", "at" and %q`, versionField)
	}
	switch {
	case in.AuditID != nil && *in.AuditID < 1:
		return badRequest("audit_id", "must be a positive integer")
	case version != nil && *version < 1:
		return badRequest(versionField, "must be a positive integer")
	}
	return nil
}

func (in *revertInput) moment() (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, *in.At)
	if err != nil {
		return time.Time{}, badRequest("at", "must be an RFC 3339 time such as 2026-11-25T12:00:00.000Z")
	}
	return at, nil
}

// options are the revert options of a call: scoped to the caller's
// account, and a dry run or a report of what was written into plan.
func (in *revertInput) options(c call, plan *audit.Plan) *audit.RevertOptions {
	account := c.account
	return &audit.RevertOptions{
		ReadOptions: audit.ReadOptions{AccountID: &account},
		DryRun:      in.DryRun,
		Plan:        plan,
	}
}

// readRevert decodes a revert's body and checks that it names exactly one
// point; versionField is the route's own version field.
func readRevert(r *http.Request, versionField string) (*revertInput, error) {
	var in revertInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := in.point(versionField); err != nil {
		return nil, err
	}
	return &in, nil
}

// revertRunbook puts a runbook and its steps back to one point.
func (s *server) revertRunbook(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	in, err := readRevert(r, "runbook_version")
	if err != nil {
		return err
	}
	var plan audit.Plan
	opts := in.options(c, &plan)
	var revert func() error
	switch {
	case in.AuditID != nil:
		revert = func() error { return runbooks.RevertToAudit(c.ctx, s.db, id, *in.AuditID, opts) }
	case in.RunbookVersion != nil:
		revert = func() error { return runbooks.RevertToVersion(c.ctx, s.db, id, *in.RunbookVersion, opts) }
	default:
		at, err := in.moment()
		if err != nil {
			return err
		}
		revert = func() error { return runbooks.Revert(c.ctx, s.db, id, at, opts) }
	}
	return s.runRevert(w, c, in, &plan, "runbook_version", revert)
}

// revertStep puts one step of a runbook back to one point. The step may
// have been deleted since: it is found through its audit rows.
func (s *server) revertStep(w http.ResponseWriter, r *http.Request, c call) error {
	rbID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	stepID, err := pathID(r, "step_id")
	if err != nil {
		return err
	}
	in, err := readRevert(r, "step_version")
	if err != nil {
		return err
	}
	if err := s.stepOfRunbook(c, rbID, stepID); err != nil {
		return err
	}
	var plan audit.Plan
	opts := in.options(c, &plan)
	var revert func() error
	switch {
	case in.AuditID != nil:
		if err := s.auditOfStep(c, stepID, *in.AuditID); err != nil {
			return err
		}
		refs := []audit.Ref{{Type: runbooks.TypeStep, ID: stepID}}
		revert = func() error { return audit.RevertAllAfterAudit(c.ctx, s.db, refs, *in.AuditID, opts) }
	case in.StepVersion != nil:
		revert = func() error { return audit.Revert(c.ctx, s.db, runbooks.TypeStep, stepID, *in.StepVersion, opts) }
	default:
		at, err := in.moment()
		if err != nil {
			return err
		}
		revert = func() error { return audit.RevertAsOf(c.ctx, s.db, runbooks.TypeStep, stepID, at, opts) }
	}
	return s.runRevert(w, c, in, &plan, "step_version", revert)
}

// stepOfRunbook answers 404 unless step stepID of the caller's account is,
// or was, a step of runbook rbID.
func (s *server) stepOfRunbook(c call, rbID, stepID string) error {
	var steps []runbooks.Step
	if err := s.db.WithContext(c.ctx).Unscoped().Where(&runbooks.Step{ID: stepID, RunbookID: rbID, AccountID: c.account}).Limit(1).Find(&steps).Error; err != nil {
		return err
	}
	if len(steps) == 1 {
		return nil
	}
	var rows []audit.Audit
	err := s.db.WithContext(c.ctx).Where(&audit.Audit{AuditableType: runbooks.TypeStep, AuditableID: stepID, AccountID: c.account,
		AssociatedType: runbooks.TypeRunbook, AssociatedID: rbID}).Limit(1).Find(&rows).Error
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return errNotFound
	}
	return nil
}

// auditOfStep answers 422 unless audit row auditID is one of the step's.
func (s *server) auditOfStep(c call, stepID string, auditID int64) error {
	var rows []audit.Audit
	err := s.db.WithContext(c.ctx).Where(&audit.Audit{ID: auditID, AuditableType: runbooks.TypeStep, AuditableID: stepID,
		AccountID: c.account}).Limit(1).Find(&rows).Error
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return &apiError{status: http.StatusUnprocessableEntity, code: "audit_not_found", param: "audit_id",
			msg: "is not a row of this step's audit log"}
	}
	return nil
}

// runRevert runs a revert (again if it loses to a concurrent transaction)
// and answers with its plan, or with the error a caller can act on.
func (s *server) runRevert(w http.ResponseWriter, c call, in *revertInput, plan *audit.Plan, versionField string, revert func() error) error {
	err := retry(c.ctx, func() error {
		*plan = audit.Plan{} // what a lost attempt reported was rolled back
		return revert()
	})
	if err := revertError(err, in, versionField); err != nil {
		return err
	}
	records := make([]revertRecord, 0, len(plan.Records))
	for _, rp := range plan.Records {
		records = append(records, revertRecord{RecordPlan: rp, State: stateName(rp.Exists)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"dry_run": in.DryRun, "records": records})
	return nil
}

// revertRecord is one record of a revert's answer: the plan, with the
// state reverted to spelled out.
type revertRecord struct {
	audit.RecordPlan
	// State is "present" or "absent": whether the record existed at the
	// point reverted to (an absent one is removed).
	State string `json:"state"`
}

func stateName(exists bool) string {
	if exists {
		return "present"
	}
	return "absent"
}

// revertError turns a revert's error into the answer a caller can act on.
func revertError(err error, in *revertInput, versionField string) error {
	pointField := versionField
	switch {
	case in.AuditID != nil:
		pointField = "audit_id"
	case in.At != nil:
		pointField = "at"
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, audit.ErrNotFound), errors.Is(err, audit.ErrOtherAccount), errors.Is(err, gorm.ErrRecordNotFound):
		return errNotFound
	case errors.Is(err, audit.ErrVersionNotFound):
		return &apiError{status: http.StatusUnprocessableEntity, code: "version_not_found", param: versionField, msg: "is not in the record's history"}
	case errors.Is(err, runbooks.ErrAuditNotInRunbook):
		return &apiError{status: http.StatusUnprocessableEntity, code: "audit_not_found", param: "audit_id", msg: "is not a row of this runbook's audit log"}
	case errors.Is(err, runbooks.ErrRunbookAbsent):
		return &apiError{status: http.StatusUnprocessableEntity, code: "runbook_absent", param: pointField, msg: "is a point at which the runbook did not exist"}
	case errors.Is(err, audit.ErrSchemaDrift), errors.Is(err, audit.ErrHistoryGap):
		return &apiError{status: http.StatusConflict, code: "history_mismatch", msg: err.Error()}
	}
	return fmt.Errorf("revert: %w", err)
}
