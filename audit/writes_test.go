package audit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// entry is an audit row reduced to what a write form decides.
type entry struct {
	Type, ID, Action string
	Version          int
	Changes          map[string]any
}

// since returns the audit rows written after row id `after`, as entries.
func (b *bundle) since(t testing.TB, after int64) []entry {
	t.Helper()
	var rows []audit.Audit
	require.NoError(t, b.db.Where("id > ?", after).Order("id").Find(&rows).Error)
	out := make([]entry, 0, len(rows))
	for _, r := range rows {
		out = append(out, entry{r.AuditableType, r.AuditableID, string(r.Action), r.Version, decoded(t, r.AuditedChanges)})
	}
	return out
}

func (b *bundle) lastID(t testing.TB) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.db.Model(&audit.Audit{}).Select("COALESCE(MAX(id), 0)").Scan(&id).Error)
	return id
}

// world is a runbook with three steps, created through the audited database.
type world struct {
	runbook runbooks.Runbook
	steps   []runbooks.Step
}

func newWorld(t testing.TB, b *bundle) world {
	t.Helper()
	rb := runbooks.Runbook{AccountID: 7, Name: "Database failover"}
	require.NoError(t, b.w().Create(&rb).Error)
	steps := []runbooks.Step{
		{AccountID: 7, RunbookID: rb.ID, Name: "Page the DBA", Position: 0, Automatic: true, DelayDuration: runbooks.Duration(0)},
		{AccountID: 7, RunbookID: rb.ID, Name: "Promote replica", Position: 1, Config: runbooks.JSON(`{"replica":"db-2"}`)},
		{AccountID: 7, RunbookID: rb.ID, Name: "Announce", Position: 2, DelayDuration: runbooks.Duration(5 * time.Minute)},
	}
	require.NoError(t, b.w().Create(&steps).Error)
	return world{runbook: rb, steps: steps}
}

// stepSnapshot is the create/destroy changes of a step as stored.
func stepSnapshot(s runbooks.Step, discarded any) map[string]any {
	var config any
	if s.Config != nil {
		config = jsonValue(string(s.Config))
	}
	return map[string]any{
		"account_id": float64(s.AccountID), "runbook_id": s.RunbookID, "name": s.Name, "config": config,
		"repeats": s.Repeats, "position": float64(s.Position), "action_id": nil, "automatic": s.Automatic,
		"repeats_at": nil, "discarded_at": discarded, "execution_id": nil,
		"delay_duration": s.DelayDuration.String(), "derived_from_id": nil, "repeats_duration": nil,
	}
}

func jsonValue(s string) any {
	var v any
	if err := jsonUnmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func pair(old, new any) []any { return []any{old, new} }

func TestCreateIsAuditedSingleBatchAndNested(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	got := b.since(t, 0)
	want := []entry{
		{runbooks.TypeRunbook, w.runbook.ID, "create", 1, map[string]any{
			"account_id": float64(7), "name": "Database failover", "description": "", "owner_id": nil, "discarded_at": nil}},
	}
	for _, s := range w.steps {
		want = append(want, entry{runbooks.TypeStep, s.ID, "create", 1, stepSnapshot(s, nil)})
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}

	// A runbook created with its steps: gorm creates the steps through the
	// association, and each is audited with the runbook's row first.
	nested := runbooks.Runbook{AccountID: 7, Name: "Nested", Steps: []runbooks.Step{{AccountID: 7, Name: "Only step"}}}
	last := b.lastID(t)
	require.NoError(t, b.w().Create(&nested).Error)
	rows := b.since(t, last)
	require.Len(t, rows, 2)
	require.Equal(t, []string{runbooks.TypeRunbook, runbooks.TypeStep}, []string{rows[0].Type, rows[1].Type})
	require.Equal(t, nested.Steps[0].ID, rows[1].ID)
	require.Equal(t, nested.ID, rows[1].Changes["runbook_id"])
}

func TestEveryUpdateFormIsAudited(t *testing.T) {
	t.Parallel()
	repeatsAt := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	// The time as stored: SQLite keeps nanoseconds, PostgreSQL microseconds
	// (pgx truncates).
	storedRepeatsAt := "2026-01-02T03:04:05.123456789Z"
	if dbtest.Dialect() == dbtest.Postgres {
		storedRepeatsAt = "2026-01-02T03:04:05.123456Z"
	}
	cases := []struct {
		name  string
		write func(db *gorm.DB, w world) *gorm.DB
		want  func(w world) []entry
		rows  int64 // RowsAffected
	}{
		{
			name: "Save",
			write: func(db *gorm.DB, w world) *gorm.DB {
				s := w.steps[0]
				s.Name, s.Position, s.RepeatsAt = "Page the on-call DBA", 9, &repeatsAt
				return db.Save(&s)
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[0].ID, "update", 2, map[string]any{
					"name":       pair("Page the DBA", "Page the on-call DBA"),
					"position":   pair(float64(0), float64(9)),
					"repeats_at": pair(nil, storedRepeatsAt),
				}}}
			},
			rows: 1,
		},
		{
			name: "Updates(struct) writes non-zero fields",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[1]).Updates(runbooks.Step{Name: "Promote db-3", Config: runbooks.JSON(`{"replica":"db-3"}`)})
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[1].ID, "update", 2, map[string]any{
					"name":   pair("Promote replica", "Promote db-3"),
					"config": pair(map[string]any{"replica": "db-2"}, map[string]any{"replica": "db-3"}),
				}}}
			},
			rows: 1,
		},
		{
			name: "Updates(map) writes zero values",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[0]).Updates(map[string]any{"automatic": false, "execution_id": "e-1"})
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[0].ID, "update", 2, map[string]any{
					"automatic":    pair(true, false),
					"execution_id": pair(nil, "e-1"),
				}}}
			},
			rows: 1,
		},
		{
			name: "Update(column, value)",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[2]).Update("delay_duration", runbooks.Duration(time.Hour))
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[2].ID, "update", 2, map[string]any{
					"delay_duration": pair("PT5M", "PT1H"),
				}}}
			},
			rows: 1,
		},
		{
			name: "Select includes a zero value",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[0]).Select("name", "automatic").Updates(runbooks.Step{Name: "Page", Automatic: false, Position: 99})
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[0].ID, "update", 2, map[string]any{
					"name":      pair("Page the DBA", "Page"),
					"automatic": pair(true, false),
				}}}
			},
			rows: 1,
		},
		{
			name: "Omit leaves a column alone",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[1]).Omit("name").Updates(runbooks.Step{Name: "ignored", Position: 5})
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[1].ID, "update", 2, map[string]any{
					"position": pair(float64(1), float64(5)),
				}}}
			},
			rows: 1,
		},
		{
			name: "an expression records what the database holds after",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[2]).Update("position", gorm.Expr("position * ? + ?", 10, 1))
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[2].ID, "update", 2, map[string]any{
					"position": pair(float64(2), float64(21)),
				}}}
			},
			rows: 1,
		},
		{
			name: "UpdateColumn skips hooks, not the audit",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[0]).UpdateColumn("name", "Raw")
			},
			want: func(w world) []entry {
				return []entry{{runbooks.TypeStep, w.steps[0].ID, "update", 2, map[string]any{
					"name": pair("Page the DBA", "Raw"),
				}}}
			},
			rows: 1,
		},
		{
			name: "batch Where(...).Updates: one row per affected record",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&runbooks.Step{}).Where("runbook_id = ? AND position >= ?", w.runbook.ID, 1).
					Updates(map[string]any{"repeats": true, "position": gorm.Expr("position + 100")})
			},
			want: func(w world) []entry {
				return []entry{
					{runbooks.TypeStep, w.steps[1].ID, "update", 2, map[string]any{"repeats": pair(false, true), "position": pair(float64(1), float64(101))}},
					{runbooks.TypeStep, w.steps[2].ID, "update", 2, map[string]any{"repeats": pair(false, true), "position": pair(float64(2), float64(102))}},
				}
			},
			rows: 2,
		},
		{
			name: "batch update with OR conditions touches only what they match",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&runbooks.Step{}).Where("id = ?", w.steps[0].ID).Or("id = ?", w.steps[2].ID).
					Update("repeats", true)
			},
			want: func(w world) []entry {
				return []entry{
					{runbooks.TypeStep, w.steps[0].ID, "update", 2, map[string]any{"repeats": pair(false, true)}},
					{runbooks.TypeStep, w.steps[2].ID, "update", 2, map[string]any{"repeats": pair(false, true)}},
				}
			},
			rows: 2,
		},
		{
			name: "an update that changes no audited column writes no row",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&w.steps[0]).Updates(map[string]any{"name": "Page the DBA", "rules": runbooks.JSON(`["new rule"]`)})
			},
			want: func(world) []entry { return []entry{} },
			rows: 1,
		},
		{
			name: "an update matching nothing writes nothing",
			write: func(db *gorm.DB, w world) *gorm.DB {
				return db.Model(&runbooks.Step{}).Where("name = ?", "no such step").Update("position", 3)
			},
			want: func(world) []entry { return []entry{} },
			rows: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, audit.Config{})
			w := newWorld(t, b)
			last := b.lastID(t)
			res := c.write(b.w(), w)
			require.NoError(t, res.Error)
			require.Equal(t, c.rows, res.RowsAffected, "RowsAffected")
			if d := cmp.Diff(c.want(w), b.since(t, last)); d != "" {
				t.Fatalf("audit rows (-want +got):\n%s", d)
			}
		})
	}
}

func TestEveryDeleteFormIsAudited(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		write func(db *gorm.DB, w world) *gorm.DB
		gone  func(w world) []runbooks.Step // destroyed, in id order of their audits
		hard  bool
	}{
		{"Delete(&record) discards", func(db *gorm.DB, w world) *gorm.DB { return db.Delete(&w.steps[1]) },
			func(w world) []runbooks.Step { return w.steps[1:2] }, false},
		{"delete by primary key", func(db *gorm.DB, w world) *gorm.DB { return db.Delete(&runbooks.Step{}, "id = ?", w.steps[2].ID) },
			func(w world) []runbooks.Step { return w.steps[2:3] }, false},
		{"batch Where(...).Delete: one row per record", func(db *gorm.DB, w world) *gorm.DB {
			return db.Where("runbook_id = ? AND position < ?", w.runbook.ID, 2).Delete(&runbooks.Step{})
		}, func(w world) []runbooks.Step { return w.steps[0:2] }, false},
		{"Unscoped().Delete removes the row", func(db *gorm.DB, w world) *gorm.DB { return db.Unscoped().Delete(&w.steps[0]) },
			func(w world) []runbooks.Step { return w.steps[0:1] }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, audit.Config{})
			w := newWorld(t, b)
			last := b.lastID(t)
			res := c.write(b.w(), w)
			require.NoError(t, res.Error)
			gone := c.gone(w)
			require.Equal(t, int64(len(gone)), res.RowsAffected)

			got := b.since(t, last)
			require.Len(t, got, len(gone))
			byID := map[string]entry{}
			for _, e := range got {
				byID[e.ID] = e
			}
			for _, s := range gone {
				e, ok := byID[s.ID]
				require.True(t, ok, "no destroy row for %s", s.ID)
				var discarded any
				if !c.hard {
					var row runbooks.Step
					require.NoError(t, b.db.Unscoped().Take(&row, "id = ?", s.ID).Error)
					require.True(t, row.DiscardedAt.Valid, "soft delete must set discarded_at")
					discarded = row.DiscardedAt.Time.UTC().Format(time.RFC3339Nano)
				} else {
					var n int64
					require.NoError(t, b.db.Unscoped().Model(&runbooks.Step{}).Where("id = ?", s.ID).Count(&n).Error)
					require.Zero(t, n, "hard delete must remove the row")
				}
				want := entry{runbooks.TypeStep, s.ID, "destroy", 2, stepSnapshot(s, discarded)}
				if d := cmp.Diff(want, e); d != "" {
					t.Fatalf("destroy row (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestSaveOfANewRecordWithItsOwnIDIsACreate(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	last := b.lastID(t)
	// Save with a primary key that matches no row: gorm's UPDATE affects
	// nothing and it falls back to an upsert, which the plugin records as
	// the create it is.
	s := runbooks.Step{ID: "11111111-2222-4333-8444-555555555555", AccountID: 7, RunbookID: w.runbook.ID, Name: "Saved"}
	require.NoError(t, b.w().Save(&s).Error)
	got := b.since(t, last)
	require.Len(t, got, 1)
	require.Equal(t, entry{runbooks.TypeStep, s.ID, "create", 1, stepSnapshot(s, nil)}, got[0])

	// An explicit upsert over an existing row is an update of what changed.
	s.Name = "Saved again"
	last = b.lastID(t)
	require.NoError(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&s).Error)
	require.Equal(t, []entry{{runbooks.TypeStep, s.ID, "update", 2, map[string]any{"name": pair("Saved", "Saved again")}}}, b.since(t, last))
}

func TestVersionsFollowEachRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	s := w.steps[0]
	require.NoError(t, b.w().Model(&s).Update("name", "a").Error)
	require.NoError(t, b.w().Model(&s).Update("name", "b").Error)
	require.NoError(t, b.w().Delete(&s).Error)
	var versions []int
	var actions []audit.Action
	for _, a := range b.auditsOf(t, runbooks.TypeStep, s.ID) {
		versions = append(versions, a.Version)
		actions = append(actions, a.Action)
	}
	require.Equal(t, []int{1, 2, 3, 4}, versions)
	require.Equal(t, []audit.Action{"create", "update", "update", "destroy"}, actions)
	// Other records keep their own count.
	require.Len(t, b.auditsOf(t, runbooks.TypeStep, w.steps[1].ID), 1)
}

// note is a model the plugin does not know.
type note struct {
	ID        uint
	AccountID int64
	Text      string
}

func TestUnregisteredModelsAreUntouched(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	require.NoError(t, b.db.AutoMigrate(&note{}))
	n := note{AccountID: 7, Text: "hello"}
	require.NoError(t, b.w().Create(&n).Error)
	res := b.w().Model(&n).Update("text", "bye")
	require.NoError(t, res.Error)
	require.Equal(t, int64(1), res.RowsAffected)
	require.NoError(t, b.w().Delete(&n).Error)
	require.Empty(t, b.audits(t))
	// Raw SQL is not seen by gorm callbacks and is not audited either.
	require.NoError(t, b.w().Exec(`INSERT INTO notes (account_id, text) VALUES (1, 'raw')`).Error)
	require.Empty(t, b.audits(t))
}

func TestWriteFormsThatCannotBeAuditedAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	err := b.w().Model(&runbooks.Step{}).Create(map[string]any{"id": "a", "name": "from a map", "account_id": 1, "runbook_id": "r"}).Error
	require.ErrorIs(t, err, audit.ErrUnsupportedWrite)
	var n int64
	require.NoError(t, b.db.Model(&runbooks.Step{}).Count(&n).Error)
	require.Zero(t, n, "the refused create must not be written")

	// Without a transaction the audit could not be atomic.
	err = b.w().Session(&gorm.Session{SkipDefaultTransaction: true}).Create(&runbooks.Runbook{AccountID: 1, Name: "x"}).Error
	var we *audit.WriteError
	require.ErrorAs(t, err, &we)
	require.NoError(t, b.db.Model(&runbooks.Runbook{}).Count(&n).Error)
	require.Zero(t, n)
	// Inside an explicit transaction the same session is fine.
	require.NoError(t, b.w().Session(&gorm.Session{SkipDefaultTransaction: true}).Transaction(func(tx *gorm.DB) error {
		return tx.Create(&runbooks.Runbook{AccountID: 1, Name: "x"}).Error
	}))
	require.Len(t, b.audits(t), 1)

	// A global update still needs AllowGlobalUpdate, as in plain gorm.
	err = b.w().Model(&runbooks.Step{}).Update("name", "all").Error
	require.True(t, errors.Is(err, gorm.ErrMissingWhereClause), "got %v", err)
}

func TestWritesThatBypassTheModelAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	before := len(b.audits(t))

	err := b.w().Table("steps").Where("runbook_id = ?", w.runbook.ID).Updates(map[string]any{"name": "unaudited"}).Error
	require.ErrorIs(t, err, audit.ErrUnsupportedWrite)
	err = b.w().Table("steps").Create(map[string]any{"id": "x", "account_id": 7, "runbook_id": w.runbook.ID, "name": "n"}).Error
	require.ErrorIs(t, err, audit.ErrUnsupportedWrite)

	var names []string
	require.NoError(t, b.db.Model(&runbooks.Step{}).Order("position").Pluck("name", &names).Error)
	require.Equal(t, []string{"Page the DBA", "Promote replica", "Announce"}, names, "nothing was written")
	require.Len(t, b.audits(t), before)

	// Through the model, the same batch update is audited.
	require.NoError(t, b.w().Model(&runbooks.Step{}).Where("runbook_id = ?", w.runbook.ID).Update("name", "audited").Error)
	require.Len(t, b.audits(t), before+3)
}

// ticket has an auto-increment integer key, unlike the runbook models.
type ticket struct {
	ID        int64
	AccountID int64
	Title     string
}

func TestIntegerPrimaryKeysAreAuditedAsText(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{Models: []audit.Model{{Value: &ticket{}, Type: "Support::Ticket"}}})
	require.NoError(t, b.db.AutoMigrate(&ticket{}))
	batch := []ticket{{AccountID: 4, Title: "a"}, {AccountID: 4, Title: "b"}}
	require.NoError(t, b.w().Create(&batch).Error)
	require.NotZero(t, batch[1].ID, "the database assigned the keys")
	require.NoError(t, b.w().Model(&batch[1]).Update("title", "b2").Error)

	got := b.since(t, 0)
	want := []entry{
		{"Support::Ticket", fmt.Sprint(batch[0].ID), "create", 1, map[string]any{"account_id": float64(4), "title": "a"}},
		{"Support::Ticket", fmt.Sprint(batch[1].ID), "create", 1, map[string]any{"account_id": float64(4), "title": "b"}},
		{"Support::Ticket", fmt.Sprint(batch[1].ID), "update", 2, map[string]any{"title": pair("b", "b2")}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	st, err := audit.StateAt(context.Background(), b.db, "Support::Ticket", fmt.Sprint(batch[1].ID), 1, nil)
	require.NoError(t, err)
	var back ticket
	require.NoError(t, st.Decode(&back))
	require.Equal(t, ticket{ID: batch[1].ID, AccountID: 4, Title: "b"}, back)
}
