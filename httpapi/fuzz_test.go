package httpapi

import (
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

var defaultLimits = limits{defaultPerPage: 20, maxPerPage: 100, maxOffset: 100_000}

// encodeQuery renders a parsed query back as a query string.
func encodeQuery(q *query) string {
	v := url.Values{}
	v.Set("per_page", strconv.Itoa(q.PerPage))
	switch {
	case q.After != nil:
		v.Set("cursor", encodeCursor(*q.After))
	case q.AfterID != nil:
		v.Set("after_id", strconv.FormatInt(*q.AfterID, 10))
	default:
		v.Set("page", strconv.Itoa(q.Page))
		if q.Desc {
			v.Set("sort", "desc")
		} else {
			v.Set("sort", "asc")
		}
	}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("auditable_type", q.AuditableType)
	set("auditable_id", q.AuditableID)
	set("runbook_id", q.RunbookID)
	set("user_id", q.UserID)
	set("action", string(q.Action))
	if q.Since != nil {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.Until != nil {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	return v.Encode()
}

// FuzzParseQuery checks that the parser never panics, that every failure is
// a *ParamError naming a parameter, that every success respects the limits,
// and that a parsed query renders back to a query string that parses to
// the same query.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "page=2&per_page=50&sort=asc", "after_id=0", "cursor=" + encodeCursor(auditlist.Position{TxID: 7, ID: 9}),
		"auditable_type=Runbooks%3A%3AStep&runbook_id=69e62138-e673-4c21-b4fb-caf775308acc",
		"since=2022-04-26T19:34:32.889Z&until=2022-04-27T00:00:00%2B02:00", "user_id=a%20b&action=destroy",
		"page=1&page=1", "per_page=101", "x=%zz", "after_id=5&sort=asc&per_page=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw, defaultLimits)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" || pe.Reason == "" {
				t.Fatalf("parseQuery(%q) error %v is not a *ParamError naming a parameter", raw, err)
			}
			if pe.Param != "query" && len(pe.Param) > maxQueryLen {
				t.Fatalf("parameter name longer than the query: %q", pe.Param)
			}
			return
		}
		switch {
		case q.PerPage < 1 || q.PerPage > defaultLimits.maxPerPage:
			t.Fatalf("per_page %d out of range", q.PerPage)
		case q.Polling() && (q.Page != 0 || q.Desc):
			t.Fatalf("polling query with page %d desc %v", q.Page, q.Desc)
		case !q.Polling() && (q.Page < 1 || (q.Page-1)*q.PerPage > defaultLimits.maxOffset):
			t.Fatalf("page %d out of range", q.Page)
		case q.After != nil && q.AfterID != nil:
			t.Fatal("both cursor and after_id")
		case q.Since != nil && q.Until != nil && !q.Since.Before(*q.Until):
			t.Fatal("since not before until")
		case q.Action != "" && !q.Action.Valid():
			t.Fatalf("action %q", q.Action)
		case q.AuditableType != "" && q.AuditableType != auditlist.Types[0] && q.AuditableType != auditlist.Types[1]:
			t.Fatalf("auditable_type %q", q.AuditableType)
		}
		for _, s := range []string{q.AuditableID, q.RunbookID, q.UserID} {
			if len(s) > maxValueLen {
				t.Fatalf("value of %d bytes accepted", len(s))
			}
		}
		again, err := parseQuery(encodeQuery(&q), defaultLimits)
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", encodeQuery(&q), raw, err)
		}
		if d := cmp.Diff(q, again); d != "" {
			t.Fatalf("round trip of %q changed the query (-first +again):\n%s", raw, d)
		}
	})
}
