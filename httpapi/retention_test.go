package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// settableClock is an audit.Config.Now the test moves.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *settableClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// TestListingAndCursorAfterAPrune checks that the listing no longer shows
// pruned rows, and that a polling cursor taken before a prune resumes
// after it, also when the row it points at was pruned.
func TestListingAndCursorAfterAPrune(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 1, 1+d, 12, 0, 0, 0, time.UTC) }
	clk := &settableClock{now: day(0)}
	fx := fixture.Open(t, &fixture.Options{Config: audit.Config{Now: clk.Now}, Migrations: []fixture.Migration{Migrate}})
	h, err := NewHandler(fx.DB, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DefaultAuditableType: AllAuditableTypes})
	require.NoError(t, err)
	e := &env{db: fx.DB, h: h, ctx: fx.Ctx}
	token := e.bot(t, 1)

	rb := runbooks.Runbook{AccountID: 1, Name: "day 0"}
	require.NoError(t, e.w().Create(&rb).Error)
	for d := 1; d < 6; d++ {
		clk.set(day(d))
		require.NoError(t, e.w().Model(&rb).Update("name", fmt.Sprint("day ", d)).Error)
	}
	all := e.list(t, token, "sort=asc&per_page=10")
	require.Len(t, all.Data, 6)
	allIDs := ids(all.Data)

	// A poller reads the first three rows and keeps its cursor.
	e.settle(t)
	first := e.list(t, token, "after_id=0&per_page=3")
	require.Equal(t, allIDs[:3], ids(first.Data))
	cursor := first.Cursor.Next

	// The prune removes the rows of days 0 to 2: the cursor's row too.
	report, err := audit.Prune(e.ctx, e.db, audit.RetentionPolicy{Before: day(3).Add(-time.Hour)}, nil)
	require.NoError(t, err)
	require.Equal(t, int64(3), report.Removed)

	listed := e.list(t, token, "sort=asc&per_page=10")
	if diff := cmp.Diff(allIDs[3:], ids(listed.Data)); diff != "" {
		t.Fatalf("listing after the prune (-want +got):\n%s", diff)
	}
	require.Equal(t, int64(3), listed.Pagination.Count)

	next := e.list(t, token, "per_page=10&cursor="+cursor)
	if diff := cmp.Diff(allIDs[3:], ids(next.Data)); diff != "" {
		t.Fatalf("poll after the prune (-want +got):\n%s", diff)
	}
	require.False(t, next.Cursor.More)

	// after_id names a row, and the pruned row is no longer one: the
	// client is told so (the opaque cursor carries on, above).
	res := e.get(t, token, fmt.Sprintf("after_id=%d", allIDs[2]))
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
}
