package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
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

// The regression tests of issue 9's findings on the write path: each write
// form ends recorded exactly (forward replay of the record's audit rows
// equals its row) or refused with a typed error, nothing written.

// gadget has a database-assigned key, a column with a database default, a
// nullable column and a has-many association.
type gadget struct {
	ID        int64
	AccountID int64
	Name      string
	Color     string  `gorm:"default:blue"`
	Note      *string `gorm:"size:64"`
	Parts     []part  `gorm:"foreignKey:GadgetID"`
}

type part struct {
	ID        int64
	AccountID int64
	GadgetID  int64
	Label     string
}

// meter has a float and a bytea column, so PostgreSQL too writes its audit
// rows in a second statement.
type meter struct {
	ID        int64
	AccountID int64
	Reading   float64
	Raw       []byte
}

// stepTwin maps a second struct onto the steps table.
type stepTwin struct {
	ID        string `gorm:"primaryKey"`
	AccountID int64
	RunbookID string
	Name      string
}

func (stepTwin) TableName() string { return "steps" }

func setupIntegrity(t *testing.T) *bundle {
	t.Helper()
	models := append(runbooks.Models(),
		audit.Model{Value: &gadget{}, Type: "Shop::Gadget"},
		audit.Model{Value: &part{}, Type: "Shop::Part"},
		audit.Model{Value: &meter{}, Type: "Shop::Meter"},
	)
	b := setup(t, audit.Config{Models: models})
	require.NoError(t, b.db.AutoMigrate(&gadget{}, &part{}, &meter{}))
	return b
}

// requireReplayMatches checks one record: versions 1..n contiguous, and its
// audit rows replayed forward give its current row (as StateAt of the last
// version renders it) or, after a hard destroy, no row.
func requireReplayMatches(t *testing.T, b *bundle, typ, id string) {
	t.Helper()
	rows := b.auditsOf(t, typ, id)
	require.NotEmpty(t, rows, "%s %s has no audit rows", typ, id)
	var state map[string]any
	exists := false
	for i, a := range rows {
		require.Equal(t, i+1, a.Version, "%s %s: versions are not 1..n", typ, id)
		changes := decoded(t, a.AuditedChanges)
		switch a.Action {
		case audit.ActionCreate:
			require.False(t, exists, "%s %s v%d: create of an existing record", typ, id, a.Version)
			state, exists = changes, true
		case audit.ActionUpdate:
			require.True(t, exists, "%s %s v%d: update of an absent record", typ, id, a.Version)
			for col, v := range changes {
				p, ok := v.([]any)
				require.True(t, ok && len(p) == 2, "%s %s v%d: %s is not a pair", typ, id, a.Version, col)
				require.Equal(t, state[col], p[0], "%s %s v%d: old value of %s", typ, id, a.Version, col)
				state[col] = p[1]
			}
		case audit.ActionDestroy:
			require.True(t, exists, "%s %s v%d: destroy of an absent record", typ, id, a.Version)
			if changes["discarded_at"] != nil {
				state = changes // a soft delete: the row stays, discarded
				continue
			}
			exists = false
		}
	}
	st, err := audit.StateAt(context.Background(), b.db, typ, id, len(rows), nil)
	require.NoError(t, err)
	require.Equal(t, exists, st.Exists, "%s %s: replay and database disagree on existence", typ, id)
	if exists {
		if d := cmp.Diff(state, decoded(t, st.Attributes)); d != "" {
			t.Fatalf("%s %s: replay (-) differs from the database row (+):\n%s", typ, id, d)
		}
	}
}

func requireRefused(t *testing.T, err error, target error) {
	t.Helper()
	require.Error(t, err)
	require.True(t, errors.Is(err, target), "want %v, got %v", target, err)
}

func stepRow(t *testing.T, b *bundle, id string) (runbooks.Step, bool) {
	t.Helper()
	var s runbooks.Step
	res := b.db.Unscoped().Where("id = ?", id).Limit(1).Find(&s)
	require.NoError(t, res.Error)
	return s, res.RowsAffected == 1
}

// Finding 1: an upsert racing a plain create of the same new key. On
// PostgreSQL the upsert's INSERT waits for the creator's transaction, then
// meets its row: the upsert must record nothing (DO NOTHING) or an update
// from the creator's values, never a second create.
func TestRacingUpsertsOnANewKey(t *testing.T) {
	forms := []struct {
		name    string
		upsert  func(tx *gorm.DB, s *runbooks.Step) error
		updates bool
	}{
		{"OnConflict DoNothing", func(tx *gorm.DB, s *runbooks.Step) error {
			return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(s).Error
		}, false},
		{"OnConflict UpdateAll", func(tx *gorm.DB, s *runbooks.Step) error {
			return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(s).Error
		}, true},
		{"Save", func(tx *gorm.DB, s *runbooks.Step) error { return tx.Save(s).Error }, true},
	}
	for _, form := range forms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			b := setupIntegrity(t)
			w := newWorld(t, b)
			id := "9f0c1d2e-0000-4000-8000-" + fmt.Sprintf("%012d", len(form.name))
			mine := runbooks.Step{ID: id, AccountID: 7, RunbookID: w.runbook.ID, Name: "from the creator", Position: 4}
			theirs := runbooks.Step{ID: id, AccountID: 7, RunbookID: w.runbook.ID, Name: "from the upsert", Position: 5}
			raceCreateAndUpsert(t, b, &mine, func(tx *gorm.DB) error { return form.upsert(tx, &theirs) })

			rows := b.auditsOf(t, runbooks.TypeStep, id)
			require.Equal(t, audit.ActionCreate, rows[0].Action)
			require.Equal(t, "from the creator", decoded(t, rows[0].AuditedChanges)["name"])
			if form.updates {
				require.Len(t, rows, 2)
				require.Equal(t, audit.ActionUpdate, rows[1].Action)
				require.Equal(t, pair("from the creator", "from the upsert"), decoded(t, rows[1].AuditedChanges)["name"])
			} else {
				require.Len(t, rows, 1, "an upsert that did nothing records nothing")
			}
			requireReplayMatches(t, b, runbooks.TypeStep, id)
			st, err := audit.StateAt(b.ctx, b.db, runbooks.TypeStep, id, 1, nil)
			require.NoError(t, err)
			require.True(t, st.Exists, "version 1 is the creator's row")
		})
	}
}

// raceCreateAndUpsert commits create in one transaction while upsert runs
// in another. On PostgreSQL the creator holds its transaction open until
// the upsert's statement is seen waiting for it, so the two really
// overlap; SQLite has one writer, and the upsert simply runs second.
func raceCreateAndUpsert(t *testing.T, b *bundle, create *runbooks.Step, upsert func(tx *gorm.DB) error) {
	t.Helper()
	if dbtest.Dialect() != dbtest.Postgres {
		require.NoError(t, b.w().Create(create).Error)
		require.NoError(t, b.w().Transaction(upsert))
		return
	}
	upsertPID := make(chan int, 1)
	upsertDone := make(chan error, 1)
	creator := b.w().Begin()
	require.NoError(t, creator.Error)
	require.NoError(t, creator.Create(create).Error)
	go func() {
		upsertDone <- b.w().Transaction(func(tx *gorm.DB) error {
			var pid int
			if err := tx.Raw("SELECT pg_backend_pid()").Scan(&pid).Error; err != nil {
				return err
			}
			upsertPID <- pid
			return upsert(tx)
		})
	}()
	pid := <-upsertPID
	waitUntilBlocked(t, b.db, pid)
	require.NoError(t, creator.Commit().Error)
	require.NoError(t, <-upsertDone)
}

// waitUntilBlocked polls pg_stat_activity until backend pid waits for a
// lock: the state the race needs, not a duration.
func waitUntilBlocked(t *testing.T, db *gorm.DB, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting sql.NullString
		require.NoError(t, db.Raw("SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?", pid).Scan(&waiting).Error)
		if waiting.String == "Lock" {
			return
		}
		require.True(t, time.Now().Before(deadline), "backend %d never waited for the creator's lock", pid)
		time.Sleep(time.Millisecond)
	}
}

// Finding 2: Omit, Select and a partial RETURNING on create record what was
// stored (NULL, the column default), not the struct's values.
func TestCreateRecordsWhatWasStored(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	note := "kept out"
	g := gadget{AccountID: 3, Name: "lamp", Color: "red", Note: &note}
	require.NoError(t, b.w().Omit("color", "note").Create(&g).Error)
	got := decoded(t, b.auditsOf(t, "Shop::Gadget", fmt.Sprint(g.ID))[0].AuditedChanges)
	require.Equal(t, map[string]any{"account_id": float64(3), "name": "lamp", "color": "blue", "note": nil}, got)
	requireReplayMatches(t, b, "Shop::Gadget", fmt.Sprint(g.ID))

	g2 := gadget{AccountID: 3, Name: "desk", Color: "green", Note: &note}
	require.NoError(t, b.w().Select("account_id", "name").Create(&g2).Error)
	require.Equal(t, map[string]any{"account_id": float64(3), "name": "desk", "color": "blue", "note": nil},
		decoded(t, b.auditsOf(t, "Shop::Gadget", fmt.Sprint(g2.ID))[0].AuditedChanges))

	// A partial RETURNING that leaves out the key: the caller gets what it
	// asked for, the audit row what was stored.
	g3 := gadget{AccountID: 4, Name: "chair", Note: &note}
	require.NoError(t, b.w().Omit("note").Clauses(clause.Returning{Columns: []clause.Column{{Name: "color"}}}).Create(&g3).Error)
	require.Equal(t, "blue", g3.Color, "the caller's RETURNING column was delivered")
	var stored []gadget
	require.NoError(t, b.db.Where("name = ?", "chair").Find(&stored).Error)
	require.Len(t, stored, 1)
	require.Equal(t, map[string]any{"account_id": float64(4), "name": "chair", "color": "blue", "note": nil},
		decoded(t, b.auditsOf(t, "Shop::Gadget", fmt.Sprint(stored[0].ID))[0].AuditedChanges))
}

// Finding 3: updates and deletes with a caller's partial RETURNING write
// whole, correctly filed audit rows, and the caller gets its columns.
func TestPartialReturningOnUpdateAndDelete(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	w := newWorld(t, b)
	s := w.steps[1]
	var back []runbooks.Step
	res := b.w().Model(&back).Clauses(clause.Returning{Columns: []clause.Column{{Name: "name"}}}).
		Where("id = ?", s.ID).Update("name", "Promote the replica")
	require.NoError(t, res.Error)
	require.EqualValues(t, 1, res.RowsAffected)
	require.Len(t, back, 1)
	require.Equal(t, "Promote the replica", back[0].Name)
	rows := b.auditsOf(t, runbooks.TypeStep, s.ID)
	last := rows[len(rows)-1]
	require.Equal(t, int64(7), last.AccountID)
	require.Equal(t, w.runbook.ID, last.AssociatedID)
	require.Equal(t, map[string]any{"name": pair("Promote replica", "Promote the replica")}, decoded(t, last.AuditedChanges))
	requireReplayMatches(t, b, runbooks.TypeStep, s.ID)

	var gone runbooks.Step
	require.NoError(t, b.w().Clauses(clause.Returning{Columns: []clause.Column{{Name: "position"}}}).
		Where("id = ?", w.steps[2].ID).Delete(&gone).Error)
	rows = b.auditsOf(t, runbooks.TypeStep, w.steps[2].ID)
	last = rows[len(rows)-1]
	require.Equal(t, audit.ActionDestroy, last.Action)
	require.Equal(t, int64(7), last.AccountID)
	require.Equal(t, "Announce", decoded(t, last.AuditedChanges)["name"])
	requireReplayMatches(t, b, runbooks.TypeStep, w.steps[2].ID)
}

// Finding 4: SQLite's INSERT OR IGNORE / OR REPLACE could skip a row or
// delete others; they are refused before anything is written.
func TestInsertModifiersAreRefused(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	w := newWorld(t, b)
	before := b.audits(t)
	for _, modifier := range []string{"OR IGNORE", "OR REPLACE"} {
		dup := w.steps[0]
		dup.Name = "replaced"
		err := b.w().Clauses(clause.Insert{Modifier: modifier}).Create(&dup).Error
		requireRefused(t, err, audit.ErrUnsupportedWrite)
	}
	s, _ := stepRow(t, b, w.steps[0].ID)
	require.Equal(t, "Page the DBA", s.Name)
	require.Len(t, b.audits(t), len(before))
}

// Finding 5: every way of naming the steps table without the registered
// model is refused; a registered model written to another table is not
// audited as that model.
func TestWritesNamingAnAuditedTableAreRefused(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	w := newWorld(t, b)
	s := w.steps[0]
	before := len(b.audits(t))
	tables := []string{" steps", `"steps"`, "Steps", "steps AS s", "steps s"}
	if dbtest.Dialect() == dbtest.SQLite {
		tables = append(tables, "main.steps")
	} else {
		tables = append(tables, "steps") // search_path resolves it too
	}
	for _, table := range tables {
		err := b.w().Table(table).Where("id = ?", s.ID).Updates(map[string]any{"name": "unaudited"}).Error
		requireRefused(t, err, audit.ErrUnsupportedWrite)
		err = b.w().Table(table).Where("id = ?", s.ID).Delete(&note{}).Error
		requireRefused(t, err, audit.ErrUnsupportedWrite)
	}
	// Through the registered model, any spelling of its table is audited.
	require.NoError(t, b.w().Table(" steps").Where("id = ?", w.steps[2].ID).Delete(&runbooks.Step{}).Error)
	requireReplayMatches(t, b, runbooks.TypeStep, w.steps[2].ID)
	before++
	twin := stepTwin{ID: s.ID}
	requireRefused(t, b.w().Model(&twin).Update("name", "twin").Error, audit.ErrUnsupportedWrite)
	requireRefused(t, b.w().Delete(&stepTwin{ID: s.ID}).Error, audit.ErrUnsupportedWrite)
	requireRefused(t, b.w().Create(&stepTwin{ID: "twin", AccountID: 7, RunbookID: w.runbook.ID, Name: "x"}).Error, audit.ErrUnsupportedWrite)
	requireRefused(t, b.w().Table("steps").Model(&note{}).Where("id = ?", s.ID).Update("text", "x").Error, audit.ErrUnsupportedWrite)

	got, _ := stepRow(t, b, s.ID)
	require.Equal(t, "Page the DBA", got.Name)
	require.Len(t, b.audits(t), before, "nothing was written")

	// The model written into another, unaudited table: not the audited
	// table's history.
	require.NoError(t, b.db.Exec("CREATE TABLE steps_archive AS SELECT * FROM steps").Error)
	require.NoError(t, b.w().Model(&runbooks.Step{}).Table("steps_archive").Where("id = ?", s.ID).Update("name", "archived").Error)
	require.Len(t, b.audits(t), before)
}

// Finding 6: a primary-key change would end one record's history and start
// another's unrecorded: refused.
func TestPrimaryKeyChangeIsRefused(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	w := newWorld(t, b)
	s := w.steps[0]
	before := len(b.audits(t))
	err := b.w().Model(&s).Update("id", "00000000-0000-4000-8000-000000000001").Error
	requireRefused(t, err, audit.ErrUnsupportedWrite)
	_, exists := stepRow(t, b, w.steps[0].ID)
	require.True(t, exists)
	require.Len(t, b.audits(t), before)

	g := gadget{AccountID: 1, Name: "x"}
	require.NoError(t, b.w().Create(&g).Error)
	requireRefused(t, b.w().Model(&g).Update("id", g.ID+100).Error, audit.ErrUnsupportedWrite)
}

// Finding 8 (write side): account moves are refused, by every write form
// that could move a record.
func TestAccountMoveIsRefused(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	w := newWorld(t, b)
	before := len(b.audits(t))
	s := w.steps[0]
	err := b.w().Model(&s).Update("account_id", 8).Error
	requireRefused(t, err, audit.ErrAccountMove)
	var move *audit.AccountMoveError
	require.ErrorAs(t, err, &move)
	require.Equal(t, audit.AccountMoveError{Ref: audit.Ref{Type: runbooks.TypeStep, ID: s.ID}, From: 7, To: 8}, *move)

	moved := w.steps[1]
	moved.AccountID = 8
	requireRefused(t, b.w().Save(&moved).Error, audit.ErrAccountMove)
	requireRefused(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&moved).Error, audit.ErrAccountMove)
	require.Len(t, b.audits(t), before)
	var accounts []int64
	require.NoError(t, b.db.Model(&runbooks.Step{}).Distinct("account_id").Pluck("account_id", &accounts).Error)
	require.Equal(t, []int64{7}, accounts)
}

// Finding 7: a write whose audit fails is never committed, even when the
// caller ignores the error and commits its transaction.
func TestAFailedAuditNeverCommitsTheWrite(t *testing.T) {
	t.Parallel()
	t.Run("encoder refuses the value", func(t *testing.T) {
		t.Parallel()
		b := setupIntegrity(t)
		m := meter{AccountID: 1, Reading: 1.5, Raw: []byte("ok")}
		require.NoError(t, b.w().Create(&m).Error)
		before := len(b.audits(t))
		err := b.w().Transaction(func(tx *gorm.DB) error {
			_ = tx.Model(&m).Update("reading", math.Inf(1)).Error // ignored
			_ = tx.Create(&meter{AccountID: 1, Reading: math.Inf(-1)}).Error
			return nil
		})
		require.NoError(t, err, "nothing else failed: the transaction commits")
		var readings []float64
		require.NoError(t, b.db.Model(&meter{}).Order("id").Pluck("reading", &readings).Error)
		require.Equal(t, []float64{1.5}, readings, "the refused changes were undone")
		require.Len(t, b.audits(t), before)
	})
	t.Run("audit insert refused by the database", func(t *testing.T) {
		t.Parallel()
		b := setupIntegrity(t)
		w := newWorld(t, b)
		before := len(b.audits(t))
		refuseAuditInserts(t, b.db)
		err := b.w().Transaction(func(tx *gorm.DB) error {
			_ = tx.Model(&w.steps[0]).Update("name", "lost").Error // ignored
			_ = tx.Create(&runbooks.Step{AccountID: 7, RunbookID: w.runbook.ID, Name: "lost too"}).Error
			_ = tx.Delete(&w.steps[1]).Error
			return nil
		})
		if dbtest.Dialect() == dbtest.Postgres {
			require.Error(t, err, "PostgreSQL refuses to commit a transaction whose statement failed")
		}
		var names []string
		require.NoError(t, b.db.Model(&runbooks.Step{}).Order("position").Pluck("name", &names).Error)
		require.Equal(t, []string{"Page the DBA", "Promote replica", "Announce"}, names)
		require.Len(t, b.audits(t), before)
	})
}

// refuseAuditInserts makes every later audit INSERT fail, as a full disk or
// a violated constraint would.
func refuseAuditInserts(t *testing.T, db *gorm.DB) {
	t.Helper()
	if dbtest.Dialect() == dbtest.Postgres {
		require.NoError(t, db.Exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'audits refused'; END $$`).Error)
		require.NoError(t, db.Exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audits FOR EACH ROW EXECUTE FUNCTION refuse_audit()`).Error)
		return
	}
	require.NoError(t, db.Exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audits BEGIN SELECT RAISE(ABORT, 'audits refused'); END`).Error)
}

// Finding 13: nested creates and Save of a slice of new records whose keys
// the database assigns are recorded as creates.
func TestNestedCreateAndSaveOfNewRecordsWithDatabaseKeys(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	g := gadget{AccountID: 2, Name: "bike", Parts: []part{{AccountID: 2, Label: "wheel"}, {AccountID: 2, Label: "bell"}}}
	require.NoError(t, b.w().Create(&g).Error)
	require.NotZero(t, g.Parts[1].ID)
	batch := []gadget{{AccountID: 2, Name: "kite"}, {AccountID: 2, Name: "ball"}}
	require.NoError(t, b.w().Save(&batch).Error)
	require.NotZero(t, batch[0].ID)
	require.NotZero(t, batch[1].ID)
	batch[0].Name = "red kite"
	require.NoError(t, b.w().Save(&batch).Error, "Save of the slice again: an update and a no-op")

	for _, ref := range []audit.Ref{
		{Type: "Shop::Gadget", ID: fmt.Sprint(g.ID)},
		{Type: "Shop::Part", ID: fmt.Sprint(g.Parts[0].ID)},
		{Type: "Shop::Part", ID: fmt.Sprint(g.Parts[1].ID)},
		{Type: "Shop::Gadget", ID: fmt.Sprint(batch[0].ID)},
		{Type: "Shop::Gadget", ID: fmt.Sprint(batch[1].ID)},
	} {
		requireReplayMatches(t, b, ref.Type, ref.ID)
	}
	require.Len(t, b.auditsOf(t, "Shop::Gadget", fmt.Sprint(batch[0].ID)), 2)
	require.Len(t, b.auditsOf(t, "Shop::Gadget", fmt.Sprint(batch[1].ID)), 1)
}

// With gorm's PrepareStmt the plugin's savepoints and statements are
// prepared like the caller's; every path still records and refuses alike.
func TestPreparedStatementSessionsAreAudited(t *testing.T) {
	t.Parallel()
	b := setupIntegrity(t)
	db := b.w().Session(&gorm.Session{PrepareStmt: true})
	m := meter{AccountID: 1, Reading: 1.5, Raw: []byte("ok")}
	require.NoError(t, db.Create(&m).Error)
	require.NoError(t, db.Model(&m).Update("reading", 2.5).Error)
	requireRefused(t, db.Model(&m).Update("reading", math.Inf(1)).Error, audit.ErrUnsupportedValue)
	require.NoError(t, db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&meter{ID: m.ID, AccountID: 1, Reading: 3, Raw: []byte("ok")}).Error)
	require.NoError(t, db.Delete(&m).Error)
	w := newWorld(t, &bundle{db: b.db, ctx: b.ctx})
	require.NoError(t, db.Model(&w.steps[0]).Update("position", gorm.Expr("position + 1")).Error)
	require.Len(t, b.auditsOf(t, "Shop::Meter", fmt.Sprint(m.ID)), 4)
	requireReplayMatches(t, b, "Shop::Meter", fmt.Sprint(m.ID))
	requireReplayMatches(t, b, runbooks.TypeStep, w.steps[0].ID)
}
