package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// outcomes counts the statuses of concurrent requests and keeps the
// bodies of 5xx answers.
type outcomes struct {
	mu       sync.Mutex
	byStatus map[string]int // "POST steps 201"
	failures []string
}

func (o *outcomes) add(what string, status int, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byStatus[fmt.Sprintf("%s %d", what, status)]++
	if status >= 500 {
		o.failures = append(o.failures, fmt.Sprintf("%s %d: %s", what, status, body))
	}
}

// seenAll reports whether every one of whats has been counted at least
// once.
func (o *outcomes) seenAll(whats []string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range whats {
		if o.byStatus[w] == 0 {
			return false
		}
	}
	return true
}

// send makes one request as the user and returns the status and body.
func send(t *testing.T, hc *http.Client, method, url, token string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestConcurrentEditsAndReverts has 8 editors add, edit and delete steps of
// the demo runbook while 2 reverters revert it to random moments, for 10 s
// on PostgreSQL (3 s on SQLite, which has one writer). No request may get a
// 5xx: deadlocks and serialization failures are retried, then answered
// 409. On a machine so busy that some kind of request has not succeeded
// once by then, the clients go on until each has (for at most a minute).
// Afterwards every record's history must be consistent: versions
// 1..n, every update's old values equal to the state replayed so far, and
// the replayed state equal to the row.
func TestConcurrentEditsAndReverts(t *testing.T) {
	srv, db, user, _ := inProcess(t)
	run := 3 * time.Second
	if dbtest.Dialect() == dbtest.Postgres {
		run = 10 * time.Second
	}
	base := srv.URL + "/v1/runbooks/" + demoRunbookID
	hc := srv.Client()
	o := &outcomes{byStatus: map[string]int{}}
	start := time.Now()
	deadline, limit := start.Add(run), start.Add(time.Minute)
	exercised := []string{"add step 201", "edit step 200", "delete step 204", "revert 200"}
	going := func() bool {
		now := time.Now()
		return now.Before(deadline) || (now.Before(limit) && !o.seenAll(exercised))
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var mine []string
			for n := 0; going(); n++ {
				switch r := rand.Float64(); {
				case len(mine) == 0 || r < 0.35:
					status, body := send(t, hc, "POST", base+"/steps", user, map[string]any{"name": fmt.Sprintf("editor %d step %d", i, n), "position": rand.IntN(20)})
					o.add("add step", status, body)
					var s runbooks.Step
					if status == http.StatusCreated && json.Unmarshal(body, &s) == nil {
						mine = append(mine, s.ID)
					}
				case r < 0.8:
					id := mine[rand.IntN(len(mine))]
					status, body := send(t, hc, "PATCH", base+"/steps/"+id, user, map[string]any{"name": fmt.Sprintf("editor %d edit %d", i, n), "position": rand.IntN(20)})
					o.add("edit step", status, body)
				default:
					k := rand.IntN(len(mine))
					status, body := send(t, hc, "DELETE", base+"/steps/"+mine[k], user, nil)
					o.add("delete step", status, body)
					mine = slices.Delete(mine, k, k+1)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for going() {
				at := start.Add(time.Duration(rand.Int64N(int64(time.Since(start)) + 1)))
				status, body := send(t, hc, "POST", base+"/revert", user, map[string]any{"at": at.UTC().Format(time.RFC3339Nano)})
				o.add("revert", status, body)
			}
		})
	}
	wg.Wait()
	t.Logf("%s, %s: %v", dbtest.Dialect(), run, o.byStatus)
	require.Empty(t, o.failures, "5xx answers")
	for _, what := range exercised {
		require.Positive(t, o.byStatus[what], "no %q at all: the test did not exercise it", what)
	}
	requireConsistentHistory(t, db)
}

// requireConsistentHistory checks the history of the demo runbook and of
// every step it ever had.
func requireConsistentHistory(t *testing.T, db *gorm.DB) {
	t.Helper()
	ctx := context.Background()
	var stepIDs []string
	require.NoError(t, db.Unscoped().Model(&runbooks.Step{}).Where("runbook_id = ?", demoRunbookID).Pluck("id", &stepIDs).Error)
	refs := []audit.Ref{{Type: runbooks.TypeRunbook, ID: demoRunbookID}}
	for _, id := range stepIDs {
		refs = append(refs, audit.Ref{Type: runbooks.TypeStep, ID: id})
	}
	rows := 0
	for _, ref := range refs {
		var history []audit.Audit
		require.NoError(t, db.Where("auditable_type = ? AND auditable_id = ?", ref.Type, ref.ID).Order("version").Find(&history).Error)
		require.NotEmpty(t, history, "%s has no history", ref)
		rows += len(history)
		for i, a := range history {
			require.Equal(t, i+1, a.Version, "%s: versions are not 1..n", ref)
		}
		state := replay(t, ref, history)
		cur, err := audit.StateAt(ctx, db, ref.Type, ref.ID, len(history), nil)
		require.NoError(t, err, "%s", ref)
		if state == nil {
			require.False(t, cur.Exists, "%s: replayed as removed but the row exists", ref)
			continue
		}
		require.Equal(t, jsonValues(t, cur.Attributes), jsonValues(t, state), "%s: the replayed state is not the row", ref)
	}
	t.Logf("%d records, %d audit rows: consistent", len(refs), rows)
}

// replay rebuilds a record's state forward from its first audit row: a
// create or destroy gives every column, and an update's old values must
// equal the state so far. It returns nil when the last row removed it.
func replay(t *testing.T, ref audit.Ref, history []audit.Audit) audit.Changes {
	t.Helper()
	var state audit.Changes
	for _, a := range history {
		where := fmt.Sprintf("%s v%d (%s)", ref, a.Version, a.Action)
		switch a.Action {
		case audit.ActionCreate:
			state = audit.Changes{}
			for col, v := range a.AuditedChanges {
				state[col] = v
			}
		case audit.ActionUpdate:
			require.NotNil(t, state, "%s: update of a record that does not exist", where)
			for col := range a.AuditedChanges {
				old, new, ok := a.AuditedChanges.Pair(col)
				require.True(t, ok, "%s: %s is not an [old, new] pair", where, col)
				require.Equal(t, jsonValue(t, state[col]), jsonValue(t, old), "%s: old %s is not the replayed value", where, col)
				state[col] = new
			}
		case audit.ActionDestroy:
			require.NotNil(t, state, "%s: destroy of a record that does not exist", where)
			soft := string(state["discarded_at"]) == "null" && string(a.AuditedChanges["discarded_at"]) != "null"
			state = audit.Changes{}
			for col, v := range a.AuditedChanges {
				state[col] = v
			}
			if !soft {
				state = nil
			}
		}
	}
	return state
}

func jsonValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	if raw == nil {
		return "(absent)"
	}
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

func jsonValues(t *testing.T, c audit.Changes) map[string]any {
	t.Helper()
	out := map[string]any{}
	for col, raw := range c {
		out[col] = jsonValue(t, raw)
	}
	return out
}
