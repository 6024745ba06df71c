package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/httpapi/client"
	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// clientExampleServer serves the audit endpoint of db and returns its URL
// and a bot token of account 1.
func clientExampleServer(db *gorm.DB) (endpoint, token string, stop func()) {
	h, err := httpapi.NewHandler(db, &httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/runbook_audits", h)
	srv := httptest.NewServer(mux)
	token, _, err = httpapi.IssueToken(context.Background(), db, httpapi.TokenSpec{AccountID: 1, Name: "alerting bot"})
	if err != nil {
		panic(err)
	}
	return srv.URL + "/v1/runbook_audits", token, srv.Close
}

func ExampleClient_All() {
	db, ctx := apitest.ExampleDB(httpapi.Migrate)
	endpoint, token, stop := clientExampleServer(db)
	defer stop()
	rb := runbooks.Runbook{AccountID: 1, Name: "Database failover"}
	db.WithContext(ctx).Create(&rb)
	db.WithContext(ctx).Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Page the DBA"})
	db.WithContext(ctx).Model(&rb).Update("name", "Primary failover")

	c, err := client.New(endpoint, token, nil)
	if err != nil {
		panic(err)
	}
	// Two rows a page, oldest first, only this runbook's rows (its own
	// and its steps').
	opts := &client.ListOptions{Filters: client.Filters{RunbookID: rb.ID}, PerPage: 2, Ascending: true}
	for row, err := range c.All(ctx, opts) {
		if err != nil {
			panic(err)
		}
		fmt.Println(row.Version, row.Action, row.AuditableType)
	}
	// Output:
	// 1 create Runbooks::Runbook
	// 1 create Runbooks::Step
	// 2 update Runbooks::Runbook
}

func ExampleClient_Watch() {
	db, ctx := apitest.ExampleDB(httpapi.Migrate)
	endpoint, token, stop := clientExampleServer(db)
	defer stop()
	c, err := client.New(endpoint, token, nil)
	if err != nil {
		panic(err)
	}
	rb := runbooks.Runbook{AccountID: 1, Name: "Database failover"}
	db.WithContext(ctx).Create(&rb)
	db.WithContext(ctx).Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Page the DBA"})

	// saved stands for where the service persists its cursor. Returning
	// errCaughtUp from Checkpoint ends this example's watch; a service
	// would keep watching until it shuts down.
	saved := ""
	errCaughtUp := errors.New("caught up")
	watch := func() {
		err := c.Watch(ctx, &client.WatchOptions{
			Cursor:   saved,
			Interval: 10 * time.Millisecond,
			Checkpoint: func(_ context.Context, cursor string) error {
				saved = cursor
				return errCaughtUp
			},
		}, func(row client.Row) error {
			fmt.Println("changed:", row.Action, row.AuditableType, string(row.AuditedChanges["name"]))
			return nil
		})
		if !errors.Is(err, errCaughtUp) {
			panic(err)
		}
	}
	watch()

	// Later, resuming from the saved cursor: only the new change.
	db.WithContext(ctx).Model(&rb).Update("name", "Primary failover")
	watch()
	// Output:
	// changed: create Runbooks::Runbook "Database failover"
	// changed: create Runbooks::Step "Page the DBA"
	// changed: update Runbooks::Runbook ["Database failover","Primary failover"]
}
