package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/apitest"
	"github.com/gormaudit/gormaudit/httpapi/webhook"
	"github.com/gormaudit/gormaudit/runbooks"
)

func ExampleNotifier() {
	db, ctx := apitest.ExampleDB(webhook.Migrate)

	// The receiver: check the signature over the raw body before trusting
	// it, and use X-Audit-Delivery to ignore a delivery already processed.
	var secret string
	got := make(chan string, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.VerifySignature(secret, r.Header, body, 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got <- "verified delivery of row " + r.Header.Get(webhook.HeaderDelivery)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// Alert on every update of one runbook.
	rb := runbooks.Runbook{AccountID: 1, Name: "Database failover"}
	db.WithContext(ctx).Create(&rb)
	sub, err := webhook.AddSubscriber(ctx, db, webhook.SubscriberSpec{
		AccountID: 1, URL: receiver.URL, RunbookID: rb.ID, Action: audit.ActionUpdate,
		AllowPrivateNetworks: true, // this example's receiver is on loopback
	})
	if err != nil {
		panic(err)
	}
	secret = sub.Secret // in real life, handed to the receiver's operator

	n, err := webhook.NewNotifier(db, &webhook.NotifierOptions{
		PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
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
