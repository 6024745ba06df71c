package runbooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// ticker is an audit.Config.Now that moves one second forward per reading.
type ticker struct {
	mu  sync.Mutex
	now time.Time
}

func (c *ticker) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// open returns an audited database, a context carrying fixture.Actor, and
// the clock.
func open(t testing.TB) (*gorm.DB, context.Context, *ticker) {
	t.Helper()
	clk := &ticker{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	db, ctx := openWithClock(t, clk.Now)
	return db, ctx, clk
}

// snapshot reads a runbook with its live steps by position.
func snapshot(t testing.TB, db *gorm.DB, id string) runbooks.Runbook {
	t.Helper()
	var rb runbooks.Runbook
	require.NoError(t, db.Preload("Steps", func(q *gorm.DB) *gorm.DB { return q.Order("position, id") }).
		Where("id = ?", id).Take(&rb).Error)
	return rb
}

// same compares runbooks on what the audit log records.
var same = cmp.Options{
	cmpopts.IgnoreFields(runbooks.Runbook{}, "CreatedAt", "UpdatedAt"),
	cmpopts.IgnoreFields(runbooks.Step{}, "CreatedAt", "UpdatedAt", "Rules", "Conditions"),
	cmp.Transformer("json", func(j runbooks.JSON) any {
		var v any
		if len(j) > 0 && json.Unmarshal(j, &v) != nil {
			return string(j)
		}
		return v
	}),
	cmp.Transformer("µs", func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }),
}

func requireRunbook(t testing.TB, want, got runbooks.Runbook) {
	t.Helper()
	if d := cmp.Diff(want, got, same); d != "" {
		t.Fatalf("runbook mismatch (-want +got):\n%s", d)
	}
}

type scenario struct {
	rb               runbooks.Runbook
	a, b, c, d       runbooks.Step
	atV2, atT        runbooks.Runbook // snapshots
	t                time.Time
	added, transient runbooks.Step
}

// build makes a runbook with four steps and changes it before and after a
// moment T.
func build(t testing.TB, db *gorm.DB, ctx context.Context, clk *ticker) *scenario {
	t.Helper()
	w := db.WithContext(ctx)
	s := &scenario{rb: runbooks.Runbook{AccountID: 1, Name: "Major incident", Description: "SEV1"}}
	require.NoError(t, w.Create(&s.rb).Error) // runbook v1
	for i, st := range []*runbooks.Step{&s.a, &s.b, &s.c, &s.d} {
		*st = runbooks.Step{AccountID: 1, RunbookID: s.rb.ID, Name: fmt.Sprintf("Step %c", 'A'+i), Position: i,
			Config:        runbooks.JSON(fmt.Sprintf(`{"n":%d,"tags":["x"]}`, i)),
			DelayDuration: runbooks.Duration(time.Duration(i) * time.Minute),
			Rules:         runbooks.JSON(`[{"field":"severity"}]`)}
		require.NoError(t, w.Create(st).Error)
	}
	require.NoError(t, w.Model(&s.rb).Update("description", "SEV1 and SEV2").Error) // runbook v2
	s.atV2 = snapshot(t, db, s.rb.ID)

	// Before T.
	require.NoError(t, w.Model(&s.a).Update("config", runbooks.JSON(`{"n":0,"tags":["y"]}`)).Error)
	require.NoError(t, w.Model(&s.b).Update("position", 5).Error)
	s.t = clk.Now()
	s.atT = snapshot(t, db, s.rb.ID)

	// After T: every kind of change.
	require.NoError(t, w.Model(&s.rb).Updates(map[string]any{"name": "Renamed", "owner_id": "b5f0c1d2-0000-4000-8000-000000000001"}).Error)
	s.added = runbooks.Step{AccountID: 1, RunbookID: s.rb.ID, Name: "Added later", Position: 9}
	require.NoError(t, w.Create(&s.added).Error)
	s.transient = runbooks.Step{AccountID: 1, RunbookID: s.rb.ID, Name: "Added and discarded", Position: 10}
	require.NoError(t, w.Create(&s.transient).Error)
	require.NoError(t, w.Delete(&s.transient).Error)
	require.NoError(t, w.Delete(&s.b).Error)                                  // discarded
	require.NoError(t, w.Unscoped().Delete(&runbooks.Step{ID: s.c.ID}).Error) // deleted
	require.NoError(t, w.Model(&s.a).Updates(map[string]any{"name": "Renamed A", "position": 3}).Error)
	require.NoError(t, w.Model(&s.d).Updates(map[string]any{"position": 0, "repeats": true, "delay_duration": runbooks.Duration(time.Hour)}).Error)
	return s
}

func countAudits(t testing.TB, db *gorm.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&n).Error)
	return n
}

func TestRevertRunbook(t *testing.T) {
	t.Parallel()
	db, ctx, clk := open(t)
	s := build(t, db, ctx, clk)
	changed := snapshot(t, db, s.rb.ID)
	audits := countAudits(t, db)

	// Preview: what would change, per record; nothing written.
	var plan audit.Plan
	require.NoError(t, runbooks.Revert(ctx, db, s.rb.ID, s.t, &audit.RevertOptions{DryRun: true, Plan: &plan}))
	require.Equal(t, audits, countAudits(t, db))
	requireRunbook(t, changed, snapshot(t, db, s.rb.ID))
	actions := map[string]audit.Action{}
	for _, r := range plan.Records {
		actions[r.ID] = r.Action
	}
	require.Equal(t, map[string]audit.Action{
		s.rb.ID:    audit.ActionUpdate,
		s.a.ID:     audit.ActionUpdate,
		s.b.ID:     audit.ActionUpdate, // undiscard
		s.c.ID:     audit.ActionCreate, // re-insert
		s.d.ID:     audit.ActionUpdate,
		s.added.ID: audit.ActionDestroy,
	}, actions, "the transient step is discarded already: nothing to do")
	for _, r := range plan.Records {
		if r.ID == s.rb.ID {
			jsontest.RequireEqual(t, map[string]any{
				"name":     []any{"Renamed", "Major incident"},
				"owner_id": []any{"b5f0c1d2-0000-4000-8000-000000000001", nil},
			}, r.Changes)
		}
	}

	require.NoError(t, runbooks.Revert(ctx, db, s.rb.ID, s.t, nil))
	requireRunbook(t, s.atT, snapshot(t, db, s.rb.ID))

	// Same primary keys; the added step is discarded, not deleted.
	var added runbooks.Step
	require.NoError(t, db.Unscoped().Where("id = ?", s.added.ID).Take(&added).Error)
	require.True(t, added.DiscardedAt.Valid)
	// A's rules were not touched by the revert.
	var a runbooks.Step
	require.NoError(t, db.Where("id = ?", s.a.ID).Take(&a).Error)
	jsontest.RequireEqual(t, []any{map[string]any{"field": "severity"}}, a.Rules)

	// Every write was audited, in one go, with the actor and a comment.
	var rows []audit.Audit
	require.NoError(t, db.Where("id > ?", audits).Order("id").Find(&rows).Error)
	require.Len(t, rows, 6)
	for _, r := range rows {
		require.Equal(t, fixture.Actor.ID, r.UserID)
		require.Equal(t, "revert to "+s.t.Format(time.RFC3339Nano), r.Comment)
	}

	// Reverting again changes nothing.
	n := countAudits(t, db)
	require.NoError(t, runbooks.Revert(ctx, db, s.rb.ID, s.t, nil))
	require.Equal(t, n, countAudits(t, db))

	// Forward again to the state before any revert.
	require.NoError(t, runbooks.Revert(ctx, db, s.rb.ID, rows[0].CreatedAt.Add(-time.Nanosecond), nil))
	requireRunbook(t, changed, snapshot(t, db, s.rb.ID))

	// Back to the runbook's version 2: its steps as they were while it was
	// at version 2, until its version 3 (the rename) was written, so after
	// A and B changed.
	// The plan reports what was written; the caller's options are left as
	// they were (the default comment is not written into them).
	var done audit.Plan
	opts := &audit.RevertOptions{Plan: &done}
	require.NoError(t, runbooks.RevertToVersion(ctx, db, s.rb.ID, 2, opts))
	requireRunbook(t, s.atT, snapshot(t, db, s.rb.ID))
	var last audit.Audit
	require.NoError(t, db.Order("id DESC").Take(&last).Error)
	require.Equal(t, "revert to runbook version 2", last.Comment)
	require.Empty(t, opts.Comment)
	var written int64
	require.NoError(t, db.Model(&audit.Audit{}).Where("comment = ?", last.Comment).Count(&written).Error)
	require.NotZero(t, written)
	require.Len(t, done.Records, int(written), "one planned record per audit row written")

	// Version 1: the steps as created, before the description changed. A
	// comment of the caller's replaces the default one.
	require.NoError(t, runbooks.RevertToVersion(ctx, db, s.rb.ID, 1, &audit.RevertOptions{Comment: "back to the start"}))
	want := s.atV2
	want.Description = "SEV1"
	requireRunbook(t, want, snapshot(t, db, s.rb.ID))
	var commented audit.Audit
	require.NoError(t, db.Order("id DESC").Take(&commented).Error)
	require.Equal(t, "back to the start", commented.Comment)
}

// A failure on any record rolls every record back.
func TestRevertRunbookAllOrNothing(t *testing.T) {
	t.Parallel()
	db, ctx, clk := open(t)
	s := build(t, db, ctx, clk)
	changed := snapshot(t, db, s.rb.ID)
	audits := countAudits(t, db)

	boom := errors.New("disk full")
	require.NoError(t, db.Callback().Update().Before("gorm:update").Register("test:fail_d", func(tx *gorm.DB) {
		if st, ok := tx.Statement.Model.(*runbooks.Step); ok && st.ID == s.d.ID {
			_ = tx.AddError(boom)
		}
	}))
	err := runbooks.Revert(ctx, db, s.rb.ID, s.t, nil)
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "runbooks: revert runbook "+s.rb.ID)
	require.Equal(t, audits, countAudits(t, db), "no audit row left behind")
	requireRunbook(t, changed, snapshot(t, db, s.rb.ID))
	var c int64
	require.NoError(t, db.Unscoped().Model(&runbooks.Step{}).Where("id = ?", s.c.ID).Count(&c).Error)
	require.Zero(t, c, "the re-insert of C was rolled back too")
}

func TestRevertRunbookErrors(t *testing.T) {
	t.Parallel()
	db, ctx, clk := open(t)
	before := clk.Now()
	s := build(t, db, ctx, clk)
	audits := countAudits(t, db)
	changed := snapshot(t, db, s.rb.ID)

	err := runbooks.Revert(ctx, db, s.rb.ID, before, nil)
	require.ErrorIs(t, err, runbooks.ErrRunbookAbsent)
	err = runbooks.Revert(ctx, db, "no-such-runbook", s.t, nil)
	require.ErrorIs(t, err, audit.ErrNotFound)
	other := int64(2)
	err = runbooks.Revert(ctx, db, s.rb.ID, s.t, &audit.RevertOptions{ReadOptions: audit.ReadOptions{AccountID: &other}})
	var ae *audit.AccountError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, int64(1), ae.AccountID)
	err = runbooks.RevertToVersion(ctx, db, s.rb.ID, 9, nil)
	var ve *audit.VersionError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 3, ve.Last)

	require.Equal(t, audits, countAudits(t, db), "nothing written")
	requireRunbook(t, changed, snapshot(t, db, s.rb.ID))
}

// counter is a gorm logger that counts the SQL statements run through it.
type counter struct {
	mu   sync.Mutex
	stmt []string
}

func (c *counter) LogMode(logger.LogLevel) logger.Interface { return c }
func (c *counter) Info(context.Context, string, ...any)     {}
func (c *counter) Warn(context.Context, string, ...any)     {}
func (c *counter) Error(context.Context, string, ...any)    {}
func (c *counter) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	sql, _ := fc()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stmt = append(c.stmt, sql)
}

// bulkHistory makes a runbook with n steps of v versions each: the steps are
// created through gorm (version 1), and versions 2..v, renames "v1" → "v2" →
// …, are inserted as audit rows in bulk, with the steps' rows set to match.
// Version k of every step is stamped base + k seconds.
func bulkHistory(t testing.TB, db *gorm.DB, ctx context.Context, n, v int) (rbID string, base time.Time) {
	t.Helper()
	w := db.WithContext(ctx)
	rb := runbooks.Runbook{AccountID: 1, Name: "Bulk"}
	require.NoError(t, w.Create(&rb).Error)
	steps := make([]runbooks.Step, n)
	for i := range steps {
		steps[i] = runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "v1", Position: i}
	}
	require.NoError(t, w.Create(&steps).Error)
	base = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]audit.Audit, 0, n*(v-1))
	for _, s := range steps {
		for k := 2; k <= v; k++ {
			rows = append(rows, audit.Audit{AccountID: 1, AuditableID: s.ID, AuditableType: runbooks.TypeStep,
				AssociatedID: rb.ID, AssociatedType: runbooks.TypeRunbook, UserID: fixture.Actor.ID, UserType: fixture.Actor.Type,
				Action: audit.ActionUpdate, Version: k, CreatedAt: base.Add(time.Duration(k) * time.Second),
				AuditedChanges: audit.Changes{"name": json.RawMessage(fmt.Sprintf(`["v%d","v%d"]`, k-1, k))}})
		}
	}
	if len(rows) > 0 {
		require.NoError(t, db.CreateInBatches(&rows, 1000).Error)
	}
	// A raw statement: not audited, as the rows above stand for its history.
	require.NoError(t, db.Exec("UPDATE steps SET name = ? WHERE runbook_id = ?", fmt.Sprintf("v%d", v), rb.ID).Error)
	return rb.ID, base
}

// Rebuilding a runbook reads its whole history with a constant number of
// statements: as many for 50 steps × 100 versions as for 5 × 10.
func TestRevertRunbookStatementCount(t *testing.T) {
	t.Parallel()
	count := func(n, v int) []string {
		db, ctx, _ := open(t)
		rbID, base := bulkHistory(t, db, ctx, n, v)
		c := &counter{}
		var plan audit.Plan
		at := base.Add(time.Duration(v/2)*time.Second + time.Second/2) // after version v/2
		require.NoError(t, runbooks.Revert(ctx, db.Session(&gorm.Session{Logger: c}), rbID, at, &audit.RevertOptions{DryRun: true, Plan: &plan}))
		require.Len(t, plan.Records, n, "every step is renamed back")
		for _, r := range plan.Records {
			jsontest.RequireEqual(t, map[string]any{"name": []any{fmt.Sprintf("v%d", v), fmt.Sprintf("v%d", v/2)}}, r.Changes)
		}
		return c.stmt
	}
	small := count(5, 10)
	large := count(50, 100)
	require.Equal(t, len(small), len(large), "statements for 5×10:\n%s\nfor 50×100:\n%s", strings.Join(small, "\n"), strings.Join(large, "\n"))
	require.LessOrEqual(t, len(large), 10)
	t.Logf("rebuilding a runbook of 50 steps × 100 versions: %d statements", len(large))
}
