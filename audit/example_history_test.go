package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// historyExample opens an in-memory database with the runbook models
// audited, a step with three versions (created, renamed, moved), and a
// context carrying the actor.
func historyExample() (context.Context, *gorm.DB, runbooks.Step) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	e := fixture.Example(&fixture.Options{Config: audit.Config{Now: clock}})
	ctx, db := e.Ctx, e.DB
	w := db.WithContext(ctx)
	rb := runbooks.Runbook{AccountID: 1, Name: "On-call"}
	step := runbooks.Step{AccountID: 1, Name: "Page primary", Position: 0}
	must(w.Create(&rb).Error)
	step.RunbookID = rb.ID
	must(w.Create(&step).Error)                                                        // version 1
	must(w.Model(&step).Update("name", "Page everyone").Error)                         // version 2
	must(w.Model(&step).Updates(map[string]any{"position": 4, "repeats": true}).Error) // version 3
	return ctx, db, step
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func ExampleStateAt() {
	ctx, db, step := historyExample()

	st, err := audit.StateAt(ctx, db, runbooks.TypeStep, step.ID, 1, nil)
	if err != nil {
		panic(err)
	}
	var then runbooks.Step
	if err := st.Decode(&then); err != nil {
		panic(err)
	}
	fmt.Println(st.Version, st.At.Format(time.Kitchen), then.Name, then.Position, then.Repeats)

	_, err = audit.StateAt(ctx, db, runbooks.TypeStep, step.ID, 9, nil)
	var ve *audit.VersionError
	fmt.Println(errors.As(err, &ve), ve.First, ve.Last)
	// Output:
	// 1 9:02AM Page primary 0 false
	// true 1 3
}

func ExampleStateAsOf() {
	ctx, db, step := historyExample()

	// Version 2 was written at 9:03, version 3 at 9:04.
	at := time.Date(2026, 3, 1, 9, 3, 30, 0, time.UTC)
	st, err := audit.StateAsOf(ctx, db, runbooks.TypeStep, step.ID, at, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Version, string(st.Attributes["name"]), string(st.Attributes["position"]))
	// Output:
	// 2 "Page everyone" 0
}

func ExampleDiff() {
	ctx, db, step := historyExample()

	diff, err := audit.Diff(ctx, db, runbooks.TypeStep, step.ID, 1, 3, nil)
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(diff)
	fmt.Println(string(b))
	// Output:
	// {"name":["Page primary","Page everyone"],"repeats":[false,true],"position":[0,4]}
}

func ExampleRevert() {
	ctx, db, step := historyExample()

	// Preview first: nothing is written.
	var plan audit.Plan
	if err := audit.Revert(ctx, db, runbooks.TypeStep, step.ID, 1, &audit.RevertOptions{DryRun: true, Plan: &plan}); err != nil {
		panic(err)
	}
	b, _ := json.Marshal(plan.Records[0].Changes)
	fmt.Println(plan.Records[0].Action, string(b))

	// Then write version 1 back; the revert is itself audited.
	if err := audit.Revert(ctx, db, runbooks.TypeStep, step.ID, 1, nil); err != nil {
		panic(err)
	}
	var last audit.Audit
	db.Where("auditable_id = ?", step.ID).Order("version DESC").Take(&last)
	fmt.Println(last.Version, last.Action, last.Comment)

	// Hard-deleted rows come back with the same primary key.
	must(db.WithContext(ctx).Unscoped().Delete(&runbooks.Step{ID: step.ID}).Error)
	if err := audit.Revert(ctx, db, runbooks.TypeStep, step.ID, 4, nil); err != nil {
		panic(err)
	}
	var back runbooks.Step
	db.Where("id = ?", step.ID).Take(&back)
	var restore audit.Audit
	db.Where("auditable_id = ?", step.ID).Order("version DESC").Take(&restore)
	fmt.Println(back.ID == step.ID, back.Name, restore.Version, restore.Action)
	// Output:
	// update {"name":["Page everyone","Page primary"],"repeats":[true,false],"position":[4,0]}
	// 4 update revert to version 1
	// true Page primary 6 create
}
