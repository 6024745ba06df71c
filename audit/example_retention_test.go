package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

func ExamplePrune() {
	// A runbook created on March 1st and renamed on each of the next 4 days.
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	e := fixture.Example(&fixture.Options{Config: audit.Config{Now: func() time.Time { return now }}})
	ctx, db := e.Ctx, e.DB
	rb := runbooks.Runbook{AccountID: 1, Name: "day 1"}
	must(db.WithContext(ctx).Create(&rb).Error)
	for d := 2; d <= 5; d++ {
		now = now.AddDate(0, 0, 1)
		must(db.WithContext(ctx).Model(&rb).Update("name", fmt.Sprint("day ", d)).Error)
	}

	// Keep two days' rows (it is March 5th, 9:00), archiving what goes.
	var archive bytes.Buffer
	report, err := audit.Prune(ctx, db, audit.RetentionPolicy{Keep: 48 * time.Hour},
		&audit.PruneOptions{Archive: &archive})
	if err != nil {
		panic(err)
	}
	fmt.Println("removed", report.Removed, "rows created before", report.Before.Format(time.DateTime))

	// The archive is complete: its rows match its manifest.
	chunks, err := audit.ReadArchive(&archive, func(a audit.Audit) error {
		fmt.Println("archived", a.ID, a.Action, "version", a.Version)
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("manifest: %d rows, ids %d to %d\n", chunks[0].Count, chunks[0].FirstID, chunks[0].LastID)

	// History before the horizon is gone; after it, it still rebuilds.
	_, err = audit.StateAt(ctx, db, runbooks.TypeRunbook, rb.ID, 2, nil)
	fmt.Println(errors.Is(err, audit.ErrHistoryGap))
	st, err := audit.StateAt(ctx, db, runbooks.TypeRunbook, rb.ID, 3, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(st.Attributes["name"]))
	// Output:
	// removed 2 rows created before 2026-03-03 09:00:00
	// archived 1 create version 1
	// archived 2 update version 2
	// manifest: 2 rows, ids 1 to 2
	// true
	// "day 3"
}
