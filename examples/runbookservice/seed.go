package main

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"
)

// The demo account's fixed identifiers. The runbook and its first step are
// those of the hosted service's example audit row.
const (
	demoAccount   = 1
	demoUserID    = "0d2e8479-c00b-44c7-bca4-01e60a3e8035"
	demoBotID     = "5b0f2a43-3c55-4d5e-9a77-2f1c9b8e6d10"
	demoRunbookID = "69e62138-e673-4c21-b4fb-caf775308acc"
	demoStepID    = "84edbbc2-b15c-4d18-94aa-c72073159a74"
)

type demo struct {
	userToken, botToken, runbookID string
}

// seed enables auditing for the demo account, creates its runbook with a
// little history unless it exists, and makes sure the demo tokens work.
func seed(ctx context.Context, db *gorm.DB, userToken, botToken string) (demo, error) {
	if _, err := audit.EnableAccount(ctx, db, demoAccount); err != nil {
		return demo{}, err
	}
	var n int64
	if err := db.WithContext(ctx).Unscoped().Model(&runbooks.Runbook{}).Where("id = ?", demoRunbookID).Count(&n).Error; err != nil {
		return demo{}, err
	}
	if n == 0 {
		if err := seedRunbook(audit.WithActor(ctx, audit.Actor{ID: demoUserID, Type: "User"}), db); err != nil {
			return demo{}, err
		}
	}
	var err error
	d := demo{runbookID: demoRunbookID}
	if d.userToken, err = ensureToken(ctx, db, httpapi.TokenSpec{
		AccountID: demoAccount, Name: "demo user", PrincipalID: demoUserID, PrincipalType: httpapi.PrincipalUser,
	}, userToken); err != nil {
		return demo{}, err
	}
	if d.botToken, err = ensureToken(ctx, db, httpapi.TokenSpec{
		AccountID: demoAccount, Name: "demo bot", PrincipalID: demoBotID, PrincipalType: httpapi.PrincipalBot,
	}, botToken); err != nil {
		return demo{}, err
	}
	return d, nil
}

func seedRunbook(ctx context.Context, db *gorm.DB) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		rb := runbooks.Runbook{ID: demoRunbookID, AccountID: demoAccount, Name: "Major incident response",
			Description: "What we do when a SEV1 is declared."}
		if err := tx.Create(&rb).Error; err != nil {
			return err
		}
		action := "95facc8b-be6f-4d71-90af-f13c53126de6"
		steps := []runbooks.Step{
			{ID: demoStepID, AccountID: demoAccount, RunbookID: rb.ID, Name: "Assign A Role", Position: 0, Automatic: true,
				ActionID: &action,
				Config: runbooks.JSON(`{"role":{"label":"Commander","value":"2e0f57b8-57a6-4fce-b471-10adfcbe2bf6"},` +
					`"user":{"label":"Incident Opener","value":"{\"type\":\"incident_opener\"}"}}`)},
			{AccountID: demoAccount, RunbookID: rb.ID, Name: "Open a Slack channel", Position: 1, Automatic: true},
			{AccountID: demoAccount, RunbookID: rb.ID, Name: "Page the database team", Position: 2},
		}
		if err := tx.Create(&steps).Error; err != nil {
			return err
		}
		// Some history: a rename and a reorder.
		if err := tx.Model(&steps[2]).Update("name", "Page the on-call DBA").Error; err != nil {
			return err
		}
		if err := tx.Model(&steps[1]).Update("position", 3).Error; err != nil {
			return err
		}
		return nil
	})
}

// ensureToken returns a working token for spec: chosen if given (stored if
// new), else a newly issued random one.
func ensureToken(ctx context.Context, db *gorm.DB, spec httpapi.TokenSpec, chosen string) (string, error) {
	if chosen == "" {
		plaintext, _, err := httpapi.IssueToken(ctx, db, spec)
		return plaintext, err
	}
	spec.Plaintext = chosen
	_, _, err := httpapi.IssueToken(ctx, db, spec)
	if errors.Is(err, httpapi.ErrTokenExists) {
		return chosen, nil // kept from an earlier start
	}
	if err != nil {
		return "", fmt.Errorf("demo token %q: %w", spec.Name, err)
	}
	return chosen, nil
}
