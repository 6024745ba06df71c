package audit_test

import (
	"context"
	"fmt"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// openExampleDB opens an in-memory SQLite database for the examples.
func openExampleDB() *gorm.DB {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	sqlDB, _ := db.DB()
	sqlDB.SetMaxOpenConns(1) // one in-memory database, one connection
	return db
}

func Example() {
	ctx := context.Background()
	db := openExampleDB()
	if err := db.Use(audit.New(audit.Config{Models: runbooks.Models()})); err != nil {
		panic(err)
	}
	if err := runbooks.Migrate(ctx, db); err != nil {
		panic(err)
	}
	if err := audit.Migrate(ctx, db); err != nil {
		panic(err)
	}

	ctx = audit.WithActor(ctx, audit.Actor{ID: "0d2e8479-c00b-44c7-bca4-01e60a3e8035", Type: "User"})
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
	db := openExampleDB()
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
	ctx := context.Background()
	db := openExampleDB()
	_ = db.Use(audit.New(audit.Config{Models: runbooks.Models()}))
	_ = runbooks.Migrate(ctx, db)
	_ = audit.Migrate(ctx, db)

	ctx = audit.WithActor(ctx, audit.Actor{ID: "bot-7", Type: "BotUser"})
	ctx = audit.WithComment(ctx, "synced from the runbook repository")
	ctx = audit.WithRequest(ctx, audit.Request{RemoteAddress: "192.0.2.10", UUID: "5f0c1a9e-8e0b-4b1e-9f51-3c2f4f9d2a77"})
	db.WithContext(ctx).Create(&runbooks.Runbook{AccountID: 1, Name: "Deploy rollback"})

	var row audit.Audit
	db.Take(&row)
	fmt.Println(row.UserID, row.UserType, row.Comment, row.RemoteAddress, row.RequestUUID)
	// Output: bot-7 BotUser synced from the runbook repository 192.0.2.10 5f0c1a9e-8e0b-4b1e-9f51-3c2f4f9d2a77
}
