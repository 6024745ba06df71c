package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

func ExampleNewHandler() {
	ctx := context.Background()
	db := fixture.ExampleSQLite() // gorm.Open on an in-memory SQLite database
	_ = db.Use(audit.New(audit.Config{Models: runbooks.Models(), EnabledAccountsOnly: true}))
	for _, migrate := range []func(context.Context, *gorm.DB) error{runbooks.Migrate, audit.Migrate, httpapi.Migrate} {
		if err := migrate(ctx, db); err != nil {
			panic(err)
		}
	}

	// The account turns the audit log on and gets a bot token.
	if _, err := audit.EnableAccount(ctx, db, 1); err != nil {
		panic(err)
	}
	token, _, err := httpapi.IssueToken(ctx, db, httpapi.TokenSpec{AccountID: 1, Name: "change alerts"})
	if err != nil {
		panic(err)
	}

	// Someone edits a runbook.
	user := audit.WithActor(ctx, audit.Actor{ID: fixture.ActorID, Type: "User"})
	rb := runbooks.Runbook{AccountID: 1, Name: "Major incident"}
	db.WithContext(user).Create(&rb)
	db.WithContext(user).Model(&rb).Update("name", "SEV1 response")

	// The service mounts the endpoint.
	h, err := httpapi.NewHandler(db, &httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux, "/v1/runbook_audits") // and /v1/runbook_audits/openapi.json
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The bot polls for what changed.
	req, _ := http.NewRequest("GET", srv.URL+"/v1/runbook_audits?after_id=0", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	var body struct {
		Data []struct {
			ID             int64           `json:"id"`
			Action         string          `json:"action"`
			Version        int             `json:"version"`
			AuditedChanges json.RawMessage `json:"audited_changes"`
		} `json:"data"`
		Cursor struct {
			NextAfterID int64 `json:"next_after_id"`
			More        bool  `json:"more"`
		} `json:"cursor"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		panic(err)
	}
	fmt.Println(res.StatusCode)
	for _, row := range body.Data {
		fmt.Println(row.ID, row.Action, row.Version)
	}
	fmt.Println(string(body.Data[1].AuditedChanges))
	fmt.Println("next after_id:", body.Cursor.NextAfterID, "more:", body.Cursor.More)

	// Output:
	// 200
	// 1 create 1
	// 2 update 2
	// {"name":["Major incident","SEV1 response"]}
	// next after_id: 2 more: false
}
