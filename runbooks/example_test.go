package runbooks_test

import (
	"fmt"
	"time"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

func ExampleRevert() {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	e := fixture.Example(&fixture.Options{Config: audit.Config{Now: clock}})
	ctx, db := e.Ctx, e.DB
	w := db.WithContext(ctx)

	rb := runbooks.Runbook{AccountID: 1, Name: "On-call", Steps: []runbooks.Step{
		{AccountID: 1, Name: "Page primary", Position: 0},
		{AccountID: 1, Name: "Open a channel", Position: 1},
	}}
	w.Create(&rb)
	good := clock() // the moment to go back to

	// Last night: a step renamed, one deleted, one added.
	w.Model(&rb.Steps[0]).Update("name", "Page nobody")
	w.Delete(&rb.Steps[1])
	w.Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Do nothing", Position: 2})

	show := func() {
		var steps []runbooks.Step
		db.Where("runbook_id = ?", rb.ID).Order("position").Find(&steps)
		for _, s := range steps {
			fmt.Printf("  %d %s\n", s.Position, s.Name)
		}
	}
	fmt.Println("before:")
	show()

	var plan audit.Plan
	if err := runbooks.Revert(ctx, db, rb.ID, good, &audit.RevertOptions{DryRun: true, Plan: &plan}); err != nil {
		panic(err)
	}
	fmt.Println("would write:", len(plan.Records), "records")

	if err := runbooks.Revert(ctx, db, rb.ID, good, nil); err != nil {
		panic(err)
	}
	fmt.Println("after:")
	show()
	// Output:
	// before:
	//   0 Page nobody
	//   2 Do nothing
	// would write: 3 records
	// after:
	//   0 Page primary
	//   1 Open a channel
}
