package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// stepClock is an audit.Config.Now that moves forward by step on every
// reading, so that a history spreads over months.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// logView is everything a reader can get from the audit log: the rows as
// stored, the pages and the polling stream of the endpoint, every state
// of every record, and what a revert would write.
type logView struct {
	Rows       []audit.Audit
	PagesAsc   [][]int64
	PagesDesc  [][]int64
	Stream     []int64
	States     map[string]string // the JSON of each state
	RevertPlan string            // the JSON of the plan
}

// TestConvertingToPartitionedKeepsTheLog writes a history spread over six
// months into the plain audits table, converts it with audit.Partition and
// requires every reader to see the same log: the rows with their ids, the
// endpoint's pages and polling stream, the states at every version and a
// revert's plan. Rows land in the partitions of their months, and the next
// writes continue the ids and the versions.
func TestConvertingToPartitionedKeepsTheLog(t *testing.T) {
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has no partitioned tables")
	}
	t.Parallel()
	start := time.Now().UTC().AddDate(0, -6, 0)
	clk := &stepClock{now: start, step: 3 * 24 * time.Hour}
	e := fixture.Open(t, &fixture.Options{Config: audit.Config{Now: clk.Now}, Migrations: []fixture.Migration{Migrate}})
	ctx, db := e.Ctx, e.DB
	// The plain layout, whatever TEST_AUDIT_LAYOUT says.
	require.NoError(t, db.Exec(`DROP TABLE audits CASCADE`).Error)
	require.NoError(t, audit.Migrate(ctx, db))
	h, err := NewHandler(db, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DefaultAuditableType: AllAuditableTypes})
	require.NoError(t, err)
	env := &env{db: db, h: h, ctx: ctx}
	token := env.bot(t, 1)
	env.bot(t, 2)

	w := db.WithContext(ctx)
	var rbs []runbooks.Runbook
	for acct := int64(1); acct <= 2; acct++ {
		rb := runbooks.Runbook{AccountID: acct, Name: fmt.Sprint("runbook ", acct)}
		require.NoError(t, w.Create(&rb).Error)
		steps := []runbooks.Step{{AccountID: acct, RunbookID: rb.ID, Name: "a", Position: 0},
			{AccountID: acct, RunbookID: rb.ID, Name: "b", Position: 1}, {AccountID: acct, RunbookID: rb.ID, Name: "c", Position: 2}}
		require.NoError(t, w.Create(&steps).Error)
		for i := range 20 {
			require.NoError(t, w.Model(&steps[i%3]).Update("position", gorm.Expr("position + 3")).Error)
			if i%5 == 0 {
				require.NoError(t, w.Model(&rb).Update("name", fmt.Sprint("runbook ", acct, " v", i)).Error)
			}
		}
		require.NoError(t, w.Delete(&steps[1]).Error)
		require.NoError(t, runbooks.RevertToVersion(ctx, db, rb.ID, 2, nil))
		rbs = append(rbs, rb)
	}
	require.True(t, clk.Now().After(start.AddDate(0, 5, 0)), "the history spans months")
	env.settle(t)

	view := func() logView {
		var v logView
		require.NoError(t, db.Order("id").Find(&v.Rows).Error)
		v.PagesAsc, v.PagesDesc = listPages(t, env, token, "asc"), listPages(t, env, token, "desc")
		v.Stream = pollAll(t, env, token)
		v.States = map[string]string{}
		for _, r := range v.Rows {
			st, err := audit.StateAt(ctx, db, r.AuditableType, r.AuditableID, r.Version, nil)
			require.NoError(t, err)
			b, err := json.Marshal(st)
			require.NoError(t, err)
			v.States[fmt.Sprint(r.AuditableType, "/", r.AuditableID, "@", r.Version)] = string(b)
		}
		var plan audit.Plan
		require.NoError(t, runbooks.RevertToVersion(ctx, db, rbs[0].ID, 3, &audit.RevertOptions{DryRun: true, Plan: &plan}))
		b, err := json.Marshal(plan)
		require.NoError(t, err)
		v.RevertPlan = string(b)
		return v
	}
	before := view()
	require.NotEmpty(t, before.Stream)

	require.NoError(t, audit.Partition(ctx, db, nil))

	var holders []struct {
		Partition string
		N         int
	}
	require.NoError(t, db.Raw(`SELECT tableoid::regclass::text AS partition, count(*) AS n FROM audits
		GROUP BY 1 ORDER BY 1`).Scan(&holders).Error)
	require.GreaterOrEqual(t, len(holders), 5, "the rows are spread over the partitions of their months: %v", holders)
	for _, hd := range holders {
		require.Regexp(t, `^audits_p\d{4}_\d{2}$`, hd.Partition)
	}
	after := view()
	if d := cmp.Diff(before, after); d != "" {
		t.Fatalf("the log read differently after the conversion (-before +after):\n%s", d)
	}

	// The ids and the versions go on.
	last := before.Rows[len(before.Rows)-1]
	require.NoError(t, w.Model(&rbs[0]).Update("name", "after the conversion").Error)
	var next audit.Audit
	require.NoError(t, db.Order("id DESC").Take(&next).Error)
	require.Greater(t, next.ID, last.ID)
	var prev int
	require.NoError(t, db.Model(&audit.Audit{}).Where("auditable_id = ? AND id < ?", rbs[0].ID, next.ID).
		Select("MAX(version)").Scan(&prev).Error)
	require.Equal(t, prev+1, next.Version)
}

// listPages reads every page of account 1's log, sorted as sort says, and
// returns the ids of each.
func listPages(t *testing.T, e *env, token, sort string) [][]int64 {
	t.Helper()
	var pages [][]int64
	for page := 1; ; page++ {
		got := e.list(t, token, fmt.Sprintf("sort=%s&per_page=7&page=%d", sort, page))
		pages = append(pages, ids(got.Data))
		if got.Pagination == nil || got.Pagination.Next == nil {
			return pages
		}
	}
}

// pollAll reads account 1's polling stream from its start, a few rows at
// a time, and returns the ids in the order handed out.
func pollAll(t *testing.T, e *env, token string) []int64 {
	t.Helper()
	var out []int64
	q := "after_id=0&per_page=5"
	for {
		got := e.list(t, token, q)
		out = append(out, ids(got.Data)...)
		if !got.Cursor.More {
			return out
		}
		q = "per_page=5&cursor=" + url.QueryEscape(got.Cursor.Next)
	}
}
