package httpapi

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestTenantIsolation writes rows for several accounts from shared pools of
// ids, users and times, then sends random combinations of every parameter
// as random accounts' bots: each response must be exactly what an
// in-memory filter of the caller's own rows gives, so no row of another
// account can appear.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	e := setup(t, nil)

	accounts := []int64{1, 2, 3, 4, 5}
	tokens := map[int64]string{}
	for _, a := range accounts {
		tokens[a] = e.bot(t, a)
	}
	pick := func(pool []string) string { return pool[rng.IntN(len(pool))] }
	types := []string{runbooks.TypeStep, runbooks.TypeRunbook, "Incidents::Incident"}
	recordIDs := []string{"r1", "r2", "r3", "s1", "s2", "s3", "s4"}
	runbookIDs := []string{"r1", "r2", "r3"}
	users := []string{"alice", "bob", "carol", ""}
	actions := []string{"create", "update", "destroy"}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

	version := map[string]int{}
	var rows []audit.Audit
	for range 400 {
		typ, id := pick(types), pick(recordIDs)
		a := audit.Audit{
			AccountID: []int64{0, 1, 2, 3, 4, 5, 6}[rng.IntN(7)], AuditableType: typ, AuditableID: id,
			UserID: pick(users), UserType: "User", Action: audit.Action(pick(actions)),
			AuditedChanges: audit.Changes{"name": []byte(`"x"`)},
			CreatedAt:      base.Add(time.Duration(rng.IntN(3600_000_000)) * time.Microsecond),
		}
		if typ == runbooks.TypeStep {
			a.AssociatedType, a.AssociatedID = runbooks.TypeRunbook, pick(runbookIDs)
		}
		version[typ+id]++
		a.Version = version[typ+id]
		rows = append(rows, a)
	}
	for i := 0; i < len(rows); i += 100 {
		require.NoError(t, e.db.Create(rows[i:min(i+100, len(rows))]).Error)
	}
	times := make([]time.Time, 0, len(rows))
	for _, r := range rows {
		times = append(times, r.CreatedAt)
	}

	for i := range 300 {
		account := accounts[rng.IntN(len(accounts))]
		v := url.Values{}
		q := query{}
		maybe := func(name string, pool []string) string {
			if rng.IntN(3) != 0 {
				return ""
			}
			val := pick(pool)
			if val == "" {
				return ""
			}
			v.Set(name, val)
			return val
		}
		q.AuditableType = maybe("auditable_type", types[:2])
		q.AuditableID = maybe("auditable_id", recordIDs)
		q.RunbookID = maybe("runbook_id", runbookIDs)
		q.UserID = maybe("user_id", users)
		q.Action = audit.Action(maybe("action", actions))
		if rng.IntN(3) == 0 {
			s := times[rng.IntN(len(times))]
			q.Since = &s
			v.Set("since", s.Format(time.RFC3339Nano))
		}
		if rng.IntN(3) == 0 {
			u := times[rng.IntN(len(times))]
			if q.Since == nil || q.Since.Before(u) {
				q.Until = &u
				v.Set("until", u.Format(time.RFC3339Nano))
			}
		}
		perPage := 1 + rng.IntN(30)
		v.Set("per_page", strconv.Itoa(perPage))

		poll := rng.IntN(4) == 0
		if poll {
			q.AfterID = ptr(int64(0))
		}
		want := expected(rows, account, &q)
		if poll {
			// Poll the whole stream.
			v.Set("after_id", "0")
			var got []int64
			for range 500 {
				res := e.list(t, tokens[account], v.Encode())
				requireOwn(t, account, res.Data)
				got = append(got, ids(res.Data)...)
				if !res.Cursor.More {
					break
				}
				v.Del("after_id")
				v.Set("cursor", res.Cursor.Next)
			}
			if d := gocmp.Diff(ids(want), got, cmpEmpty); d != "" {
				t.Fatalf("query %d, account %d, poll ?%s (-want +got):\n%s", i, account, v.Encode(), d)
			}
			continue
		}
		if rng.IntN(2) == 0 {
			v.Set("sort", "asc")
		} else {
			slices.Reverse(want)
		}
		pages := (len(want) + perPage - 1) / perPage
		page := 1 + rng.IntN(pages+1)
		v.Set("page", strconv.Itoa(page))
		res := e.list(t, tokens[account], v.Encode())
		requireOwn(t, account, res.Data)
		lo, hi := min((page-1)*perPage, len(want)), min(page*perPage, len(want))
		if d := gocmp.Diff(ids(want[lo:hi]), ids(res.Data), cmpEmpty); d != "" {
			t.Fatalf("query %d, account %d, ?%s (-want +got):\n%s", i, account, v.Encode(), d)
		}
		require.Equal(t, int64(len(want)), res.Pagination.Count, "query %d ?%s", i, v.Encode())
	}
}

// expected filters rows as the endpoint should for account, oldest first.
func expected(rows []audit.Audit, account int64, q *query) []audit.Audit {
	var out []audit.Audit
	for _, r := range rows {
		switch {
		case r.AccountID != account,
			r.AuditableType != runbooks.TypeStep && r.AuditableType != runbooks.TypeRunbook,
			q.AuditableType != "" && r.AuditableType != q.AuditableType,
			q.AuditableID != "" && r.AuditableID != q.AuditableID,
			q.RunbookID != "" && !(r.AuditableType == runbooks.TypeRunbook && r.AuditableID == q.RunbookID) &&
				!(r.AssociatedType == runbooks.TypeRunbook && r.AssociatedID == q.RunbookID),
			q.UserID != "" && r.UserID != q.UserID,
			q.Action != "" && r.Action != q.Action,
			q.Since != nil && r.CreatedAt.Before(*q.Since),
			q.Until != nil && !r.CreatedAt.Before(*q.Until):
			continue
		}
		out = append(out, r)
	}
	if q.Polling() {
		return out // id order: every row here has transaction id 0
	}
	slices.SortFunc(out, func(a, b audit.Audit) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func requireOwn(t *testing.T, account int64, rows []audit.Audit) {
	t.Helper()
	for _, r := range rows {
		require.Equal(t, account, r.AccountID, fmt.Sprintf("row %d of another account leaked", r.ID))
	}
}
