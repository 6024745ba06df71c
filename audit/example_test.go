package audit_test

import (
	"context"
	"fmt"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

func Example() {
	ctx := context.Background()
	db := fixture.ExampleSQLite()
	if err := db.Use(audit.New(audit.Config{Models: runbooks.Models()})); err != nil {
		panic(err)
	}
	if err := runbooks.Migrate(ctx, db); err != nil {
		panic(err)
	}
	if err := audit.Migrate(ctx, db); err != nil {
		panic(err)
	}

	ctx = audit.WithActor(ctx, audit.Actor{ID: fixture.ActorID, Type: "User"})
	rb := runbooks.Runbook{AccountID: 1, Name: "Major incident"}
	db.WithContext(ctx).Create(&rb)
	step := runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Assign A Role", Automatic: true}
	db.WithContext(ctx).Create(&step)
	db.WithContext(ctx).Model(&step).Updates(map[string]any{"name": "Assign Commander", "position": 1})
	db.WithContext(ctx).Delete(&step)

	var rows []audit.Audit
	db.Where("auditable_type = ?", runbooks.TypeStep).Order("version").Find(&rows)
	for _, r := range rows {
		fmt.Println(r.Version, r.Action, r.UserType, r.AssociatedType)
	}
	name, _ := rows[1].AuditedChanges["name"].MarshalJSON()
	fmt.Println(string(name))
	// Output:
	// 1 create User Runbooks::Runbook
	// 2 update User Runbooks::Runbook
	// 3 destroy User Runbooks::Runbook
	// ["Assign A Role","Assign Commander"]
}

func ExampleEnableAccount() {
	ctx := context.Background()
	db := fixture.ExampleSQLite()
	_ = db.Use(audit.New(audit.Config{Models: runbooks.Models(), EnabledAccountsOnly: true}))
	_ = runbooks.Migrate(ctx, db)
	_ = audit.Migrate(ctx, db)

	rb := runbooks.Runbook{AccountID: 9, Name: "Before enabling"}
	db.WithContext(ctx).Create(&rb) // account 9 is not enabled: no audit row

	if _, err := audit.EnableAccount(ctx, db, 9); err != nil {
		panic(err)
	}
	db.WithContext(ctx).Model(&rb).Update("name", "After enabling")

	var rows []audit.Audit
	db.Find(&rows)
	fmt.Println(len(rows), rows[0].Action, rows[0].Version)
	// Output: 1 update 1
}

func ExampleWithComment() {
	db := fixture.Example(nil).DB

	ctx := audit.WithActor(context.Background(), audit.Actor{ID: "bot-7", Type: "BotUser"})
	ctx = audit.WithComment(ctx, "synced from the runbook repository")
	ctx = audit.WithRequest(ctx, audit.Request{RemoteAddress: "192.0.2.10", UUID: "5f0c1a9e-8e0b-4b1e-9f51-3c2f4f9d2a77"})
	db.WithContext(ctx).Create(&runbooks.Runbook{AccountID: 1, Name: "Deploy rollback"})

	var row audit.Audit
	db.Take(&row)
	fmt.Println(row.UserID, row.UserType, row.Comment, row.RemoteAddress, row.RequestUUID)
	// Output: bot-7 BotUser synced from the runbook repository 192.0.2.10 5f0c1a9e-8e0b-4b1e-9f51-3c2f4f9d2a77
}
