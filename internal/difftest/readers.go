package difftest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/webhook"
)

// served reports whether the endpoint and the notifier serve a type.
func served(typ string) bool { return typ == runbooks.TypeRunbook || typ == runbooks.TypeStep }

// checkReaders checks that every stored runbook and step audit row of each
// recorded account is returned by the listing (unfiltered, and filtered by
// its record) and delivered by the notifier.
func checkReaders(t testing.TB, e *Env) error {
	s, err := read(e.w())
	if err != nil {
		return err
	}
	want := map[int64][]auditRow{}
	for _, a := range s.audits {
		if served(a.Type) {
			want[a.AccountID] = append(want[a.AccountID], a)
		}
	}
	h, err := httpapi.NewHandler(e.DB, &httpapi.Options{Logger: quiet, DefaultAuditableType: httpapi.AllAuditableTypes})
	if err != nil {
		return err
	}
	for _, acct := range accounts {
		if !e.recorded(acct) {
			continue
		}
		tok, _, err := httpapi.IssueToken(e.Ctx, e.DB, httpapi.TokenSpec{AccountID: acct, Name: "difftest"})
		if err != nil {
			return err
		}
		if err := checkListing(h, tok, want[acct], url.Values{}); err != nil {
			return diverge("listing misses rows", "account %d: %v", acct, err)
		}
		keys := map[recKey]bool{}
		for _, a := range want[acct] {
			keys[a.key()] = true
		}
		for k := range keys {
			var rows []auditRow
			for _, a := range want[acct] {
				if a.key() == k {
					rows = append(rows, a)
				}
			}
			q := url.Values{"auditable_type": {k.typ}, "auditable_id": {k.id}}
			if err := checkListing(h, tok, rows, q); err != nil {
				return diverge("filtered listing misses rows", "account %d, %s: %v", acct, k, err)
			}
		}
	}
	return checkNotifier(t, e, want)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type listed struct {
	ID             int64           `json:"id"`
	AuditedChanges json.RawMessage `json:"audited_changes"`
	Version        int             `json:"version"`
}

// checkListing pages through the endpoint with q and compares the rows
// with want (ids, versions and audited_changes by meaning).
func checkListing(h http.Handler, tok string, want []auditRow, q url.Values) error {
	var got []listed
	q.Set("sort", "asc")
	q.Set("per_page", "100")
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		req := httptest.NewRequest(http.MethodGet, "/v1/runbook_audits?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", req.URL, rec.Code, clip(rec.Body.String(), 300))
		}
		var body struct {
			Data []listed `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			return fmt.Errorf("GET %s: %v", req.URL, err)
		}
		got = append(got, body.Data...)
		if len(body.Data) < 100 {
			break
		}
	}
	exp := make([]listed, len(want))
	for i, a := range want {
		exp[i] = listed{ID: a.ID, AuditedChanges: json.RawMessage(a.Changes), Version: a.Version}
	}
	slices.SortFunc(got, func(a, b listed) int { return int(a.ID - b.ID) })
	byMeaning := cmp.Transformer("json", func(r json.RawMessage) string { return canonJSON(r) })
	if d := cmp.Diff(exp, got, byMeaning); d != "" {
		return fmt.Errorf("(-stored +listed):\n%s", d)
	}
	return nil
}

// checkNotifier subscribes to each recorded account from the start of its
// log, runs a notifier, and waits until every row has been delivered (or
// a generous deadline passes, which is the failure).
func checkNotifier(t testing.TB, e *Env, want map[int64][]auditRow) error {
	var mu sync.Mutex
	got := map[int64]bool{}
	done := make(chan struct{})
	var expect int
	for acct, rows := range want {
		if e.recorded(acct) {
			expect += len(rows)
		}
	}
	if expect == 0 {
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderDelivery), 10, 64)
		mu.Lock()
		if !got[id] {
			got[id] = true
			if len(got) == expect {
				close(done)
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	for acct := range want {
		if !e.recorded(acct) {
			continue
		}
		if _, err := webhook.AddSubscriber(e.Ctx, e.DB, webhook.SubscriberSpec{AccountID: acct, URL: srv.URL, FromStart: true, AllowPrivateNetworks: true}); err != nil {
			return err
		}
	}
	n, err := webhook.NewNotifier(e.DB, &webhook.NotifierOptions{PollInterval: 10 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: quiet, AllowPrivateNetworks: true})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = n.Run(ctx) }()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	select {
	case <-done:
	case <-deadline.C:
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	var missing []string
	for acct, rows := range want {
		for _, a := range rows {
			if e.recorded(acct) && !got[a.ID] {
				missing = append(missing, a.String())
			}
		}
	}
	if len(missing) > 0 {
		return diverge("notifier does not deliver rows", "%d of %d rows never delivered, e.g. %s", len(missing), expect, missing[0])
	}
	return nil
}
