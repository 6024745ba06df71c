package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"
)

// clientExampleDB opens an in-memory SQLite database with every table, the
// audit plugin, and account 1 enabled, and returns it with a context
// carrying an actor.
func clientExampleDB() (*gorm.DB, context.Context) {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	sqlDB, _ := db.DB()
	sqlDB.SetMaxOpenConns(1) // one in-memory database, one connection
	ctx := context.Background()
	for _, migrate := range []func(context.Context, *gorm.DB) error{
		runbooks.Migrate, audit.Migrate, httpapi.Migrate, httpapi.MigrateNotifier,
	} {
		if err := migrate(ctx, db); err != nil {
			panic(err)
		}
	}
	if err := db.Use(audit.New(audit.Config{Models: runbooks.Models()})); err != nil {
		panic(err)
	}
	if _, err := audit.EnableAccount(ctx, db, 1); err != nil {
		panic(err)
	}
	return db, audit.WithActor(ctx, audit.Actor{ID: "0d2e8479-c00b-44c7-bca4-01e60a3e8035", Type: "User"})
}

// clientExampleServer serves the audit endpoint of db and returns its URL
// and a bot token of account 1.
func clientExampleServer(db *gorm.DB) (endpoint, token string, stop func()) {
	h, err := httpapi.NewHandler(db, &httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	db, ctx := clientExampleDB()
	endpoint, token, stop := clientExampleServer(db)
	defer stop()
	rb := runbooks.Runbook{AccountID: 1, Name: "Database failover"}
	db.WithContext(ctx).Create(&rb)
	db.WithContext(ctx).Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Page the DBA"})
	db.WithContext(ctx).Model(&rb).Update("name", "Primary failover")

	c, err := httpapi.NewClient(endpoint, token)
	if err != nil {
		panic(err)
	}
	// Two rows a page, oldest first, only this runbook's rows (its own
	// and its steps').
	opts := &httpapi.ListOptions{Filters: httpapi.Filters{RunbookID: rb.ID}, PerPage: 2, Ascending: true}
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
	db, ctx := clientExampleDB()
	endpoint, token, stop := clientExampleServer(db)
	defer stop()
	c, err := httpapi.NewClient(endpoint, token)
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
		err := c.Watch(ctx, &httpapi.WatchOptions{
			Cursor:   saved,
			Interval: 10 * time.Millisecond,
			Checkpoint: func(_ context.Context, cursor string) error {
				saved = cursor
				return errCaughtUp
			},
		}, func(row audit.Audit) error {
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

func ExampleNotifier() {
	db, ctx := clientExampleDB()

	// The receiver: check the signature over the raw body before trusting
	// it, and use X-Audit-Delivery to ignore a delivery already processed.
	var secret string
	got := make(chan string, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := httpapi.VerifySignature(secret, r.Header, body, 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got <- "verified delivery of row " + r.Header.Get(httpapi.HeaderDelivery)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// Alert on every update of one runbook.
	rb := runbooks.Runbook{AccountID: 1, Name: "Database failover"}
	db.WithContext(ctx).Create(&rb)
	sub, err := httpapi.AddSubscriber(ctx, db, httpapi.SubscriberSpec{
		AccountID: 1, URL: receiver.URL, RunbookID: rb.ID, Action: audit.ActionUpdate,
		AllowPrivateNetworks: true, // this example's receiver is on loopback
	})
	if err != nil {
		panic(err)
	}
	secret = sub.Secret // in real life, handed to the receiver's operator

	n, err := httpapi.NewNotifier(db, &httpapi.NotifierOptions{
		PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AllowPrivateNetworks: true,
	})
	if err != nil {
		panic(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- n.Run(runCtx) }()

	db.WithContext(ctx).Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "Page the DBA"}) // a create: filtered out
	db.WithContext(ctx).Model(&rb).Update("name", "Primary failover")
	fmt.Println(<-got)

	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// verified delivery of row 3
	// stopped: <nil>
}
