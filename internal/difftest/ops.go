package difftest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// call is what an op sees: the statement's handle (the caller's
// transaction or the database), its randomness and its description.
type call struct {
	e    *Env
	db   *gorm.DB
	rng  *rand.Rand
	desc []string
}

func (c *call) say(format string, args ...any) { c.desc = append(c.desc, fmt.Sprintf(format, args...)) }

// stepSlot draws a step key and the account it is created in.
func (c *call) stepSlot() (string, int64) {
	i := c.rng.IntN(stepSlots)
	return c.e.steps[i], accounts[i%len(accounts)]
}

func (c *call) newStep(id string, acct int64) *runbooks.Step {
	s := &runbooks.Step{
		ID: id, AccountID: acct, RunbookID: c.e.runbookOf(acct), Name: plainString(c.rng, "step"),
		Position: c.rng.IntN(10), Repeats: c.rng.IntN(2) == 0, DelayDuration: runbooks.Duration(time.Duration(c.rng.IntN(600)) * time.Second),
		Rules: runbooks.JSON(`{"never": "audited"}`),
	}
	if c.rng.IntN(2) == 0 {
		s.Config = plainJSON(c.rng)
	}
	if c.rng.IntN(2) == 0 {
		at := plainTime(c.rng)
		s.RepeatsAt = &at
	}
	if c.rng.IntN(2) == 0 {
		a := plainString(c.rng, "action")
		s.ActionID = &a
	}
	return s
}

// intKey draws an existing key of an integer-keyed table, or one no row has.
func (c *call) intKey(t *table) int64 {
	var ids []int64
	c.db.Table(t.name).Order("id").Pluck("id", &ids)
	i := c.rng.IntN(len(ids) + 1)
	if i == len(ids) {
		return 1_000_000 + int64(c.rng.IntN(1000))
	}
	return ids[i]
}

func (c *call) newSample(exotic bool) *Sample {
	acct := accounts[c.rng.IntN(len(accounts))]
	s := &Sample{AccountID: acct, Label: plainString(c.rng, "sample"), Blob: []byte(plainString(c.rng, "blob")),
		Score: float64(c.rng.IntN(1000)) / 8, At: plainTime(c.rng), Doc: plainJSON(c.rng)}
	if exotic {
		c.exoticSample(&s.Label, &s.Blob, &s.Score, &s.At, &s.Doc)
	}
	return s
}

func (c *call) newGauge(exotic bool) *Gauge {
	acct := accounts[c.rng.IntN(len(accounts))]
	score := float64(c.rng.IntN(1000)) / 4
	g := &Gauge{AccountID: acct, Label: plainString(c.rng, "gauge"), Score: &score, At: plainTime(c.rng), Doc: plainJSON(c.rng)}
	if exotic {
		var blob []byte
		c.exoticSample(&g.Label, &blob, g.Score, &g.At, &g.Doc)
	}
	return g
}

// exoticSample replaces one of the values with one drawn from its class.
func (c *call) exoticSample(label *string, blob *[]byte, score *float64, at *time.Time, doc *runbooks.JSON) {
	var class string
	switch c.rng.IntN(5) {
	case 0:
		*label, class = exoticString(c.rng)
	case 1:
		*blob, class = exoticBytes(c.rng)
	case 2:
		*score, class = exoticFloat(c.rng)
	case 3:
		*at, class = exoticTime(c.rng)
	default:
		*doc, class = exoticJSON(c.rng)
	}
	c.say("value class: %s", class)
}

// exoticChanges is an Updates map of one value drawn from a class, for a
// table with these columns.
func (c *call) exoticChanges(hasBlob bool) map[string]any {
	var label string
	var blob []byte
	var score float64
	var at time.Time
	var doc runbooks.JSON
	for {
		n := len(c.desc)
		c.exoticSample(&label, &blob, &score, &at, &doc)
		cls := c.desc[n]
		switch {
		case strings.Contains(cls, "string"):
			return map[string]any{"label": label}
		case strings.Contains(cls, "bytes"):
			if hasBlob {
				return map[string]any{"blob": blob}
			}
			c.desc = c.desc[:n]
		case strings.Contains(cls, "time"):
			return map[string]any{"at": at}
		case strings.Contains(cls, "JSON"):
			return map[string]any{"doc": doc}
		default:
			return map[string]any{"score": score}
		}
	}
}

// op is one write form. run performs exactly one statement through c.db
// (gating ops: one account change) and returns its error.
type op struct {
	name string
	// form is where the form comes from: the finding number, or
	// "writes" for the forms audit/writes_test.go already covers.
	form   string
	weight int
	only   string // "postgres" or "sqlite": the form exists on one database only
	gated  bool   // runs only with EnabledAccountsOnly, in a transaction rolled back
	run    func(c *call) error
}

// ops is every write form the tester generates.
var ops = []op{
	// The forms audit/writes_test.go covers.
	{name: "step.create", form: "writes", weight: 8, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Create(&Step{ID: %s, account %d})", id, acct)
		return c.db.Create(c.newStep(id, acct)).Error
	}},
	{name: "step.create_slice", form: "writes", weight: 3, run: func(c *call) error {
		a, acctA := c.stepSlot()
		b, acctB := c.stepSlot()
		c.say("Create(&[]Step{%s, %s})", a, b)
		return c.db.Create(&[]runbooks.Step{*c.newStep(a, acctA), *c.newStep(b, acctB)}).Error
	}},
	{name: "runbook.create_nested", form: "writes", weight: 2, run: func(c *call) error {
		rb := c.e.runbooks[len(accounts)+c.rng.IntN(runbookSlots-len(accounts))]
		id, acct := c.stepSlot()
		s := c.newStep(id, acct)
		s.RunbookID = ""
		c.say("Create(&Runbook{ID: %s, account %d, Steps: [%s]})", rb, acct, id)
		return c.db.Create(&runbooks.Runbook{ID: rb, AccountID: acct, Name: "nested", Steps: []runbooks.Step{*s}}).Error
	}},
	{name: "step.save_existing", form: "writes", weight: 4, run: func(c *call) error {
		id, _ := c.stepSlot()
		var s runbooks.Step
		if err := c.db.Unscoped().Where("id = ?", id).Limit(1).Find(&s).Error; err != nil || s.ID == "" {
			s = runbooks.Step{ID: id}
		}
		s.Name, s.Position = plainString(c.rng, "saved"), c.rng.IntN(10)
		c.say("Save(&Step{ID: %s} as read, name %q, position %d)", id, s.Name, s.Position)
		return c.db.Save(&s).Error
	}},
	{name: "step.save_new", form: "writes", weight: 3, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Save(&Step{ID: %s}) of a full new step", id)
		return c.db.Save(c.newStep(id, acct)).Error
	}},
	{name: "step.updates_struct", form: "writes", weight: 4, run: func(c *call) error {
		id, _ := c.stepSlot()
		v := runbooks.Step{Name: plainString(c.rng, "u"), Config: plainJSON(c.rng), Position: 1 + c.rng.IntN(9)}
		c.say("Model(&Step{ID: %s}).Updates(Step{Name: %q, Position: %d, Config})", id, v.Name, v.Position)
		return c.db.Model(&runbooks.Step{ID: id}).Updates(v).Error
	}},
	{name: "step.updates_map", form: "writes", weight: 4, run: func(c *call) error {
		id, _ := c.stepSlot()
		m := map[string]any{"automatic": c.rng.IntN(2) == 0, "execution_id": plainString(c.rng, "e"), "rules": runbooks.JSON(`[1]`)}
		c.say("Model(&Step{ID: %s}).Updates(%v)", id, m)
		return c.db.Model(&runbooks.Step{ID: id}).Updates(m).Error
	}},
	{name: "step.update", form: "writes", weight: 4, run: func(c *call) error {
		id, _ := c.stepSlot()
		v := plainString(c.rng, "n")
		c.say("Model(&Step{ID: %s}).Update(name, %q)", id, v)
		return c.db.Model(&runbooks.Step{ID: id}).Update("name", v).Error
	}},
	{name: "step.update_column", form: "writes", weight: 3, run: func(c *call) error {
		id, _ := c.stepSlot()
		v := c.rng.IntN(10)
		c.say("Model(&Step{ID: %s}).UpdateColumn(position, %d)", id, v)
		return c.db.Model(&runbooks.Step{ID: id}).UpdateColumn("position", v).Error
	}},
	{name: "step.updates_select", form: "writes", weight: 3, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Model(&Step{ID: %s}).Select(name, automatic).Updates(Step{Name, Automatic: false, Position: 99})", id)
		return c.db.Model(&runbooks.Step{ID: id}).Select("name", "automatic").Updates(runbooks.Step{Name: plainString(c.rng, "sel"), Position: 99}).Error
	}},
	{name: "step.updates_omit", form: "writes", weight: 3, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Model(&Step{ID: %s}).Omit(name).Updates(Step{Name, Position})", id)
		return c.db.Model(&runbooks.Step{ID: id}).Omit("name").Updates(runbooks.Step{Name: "omitted", Position: 1 + c.rng.IntN(9)}).Error
	}},
	{name: "step.update_expr", form: "writes", weight: 3, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Model(&Step{ID: %s}).Update(position, position + 1)", id)
		return c.db.Model(&runbooks.Step{ID: id}).Update("position", gorm.Expr("position + ?", 1)).Error
	}},
	{name: "step.batch_updates", form: "writes", weight: 3, run: func(c *call) error {
		acct := accounts[c.rng.IntN(len(accounts))]
		rep := c.rng.IntN(2) == 0
		c.say("Model(&Step{}).Where(runbook_id = runbook of %d).Updates(repeats: %t, position: position + 1)", acct, rep)
		return c.db.Model(&runbooks.Step{}).Where("runbook_id = ?", c.e.runbookOf(acct)).
			Updates(map[string]any{"repeats": rep, "position": gorm.Expr("position + 1")}).Error
	}},
	{name: "step.batch_delete", form: "writes", weight: 2, run: func(c *call) error {
		n := c.rng.IntN(6)
		c.say("Where(position < %d).Delete(&Step{})", n)
		return c.db.Where("position < ?", n).Delete(&runbooks.Step{}).Error
	}},
	{name: "step.delete", form: "writes", weight: 3, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Delete(&Step{ID: %s}) (soft)", id)
		return c.db.Delete(&runbooks.Step{ID: id}).Error
	}},
	{name: "step.delete_pk", form: "writes", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Delete(&Step{}, id = %s)", id)
		return c.db.Delete(&runbooks.Step{}, "id = ?", id).Error
	}},
	{name: "step.delete_hard", form: "writes", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Unscoped().Delete(&Step{ID: %s})", id)
		return c.db.Unscoped().Delete(&runbooks.Step{ID: id}).Error
	}},
	{name: "step.undiscard", form: "writes", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Unscoped().Model(&Step{ID: %s}).Where(discarded).Update(discarded_at, nil)", id)
		return c.db.Unscoped().Model(&runbooks.Step{ID: id}).Where("discarded_at IS NOT NULL").Update("discarded_at", nil).Error
	}},
	{name: "runbook.update", form: "writes", weight: 2, run: func(c *call) error {
		rb := c.e.runbooks[c.rng.IntN(runbookSlots)]
		owner := plainString(c.rng, "owner")
		c.say("Model(&Runbook{ID: %s}).Updates(name, owner_id %q)", rb, owner)
		return c.db.Model(&runbooks.Runbook{ID: rb}).Updates(map[string]any{"name": plainString(c.rng, "rb"), "owner_id": owner}).Error
	}},
	{name: "runbook.delete", form: "writes", weight: 1, run: func(c *call) error {
		rb := c.e.runbooks[c.rng.IntN(runbookSlots)]
		c.say("Delete(&Runbook{ID: %s}) (soft)", rb)
		return c.db.Delete(&runbooks.Runbook{ID: rb}).Error
	}},

	// (1) upserts; the racing versions run in TestDifferentialConcurrent.
	{name: "step.upsert_do_nothing", form: "1", weight: 3, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Clauses(OnConflict{DoNothing}).Create(&Step{ID: %s})", id)
		return c.db.Clauses(clause.OnConflict{DoNothing: true}).Create(c.newStep(id, acct)).Error
	}},
	{name: "step.upsert_update_all", form: "1", weight: 3, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Clauses(OnConflict{UpdateAll}).Create(&Step{ID: %s})", id)
		return c.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(c.newStep(id, acct)).Error
	}},

	// (2) creates with Omit, Select and a caller's partial RETURNING.
	{name: "step.create_omit", form: "2", weight: 2, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Omit(config, action_id, repeats_at).Create(&Step{ID: %s})", id)
		return c.db.Omit("config", "action_id", "repeats_at").Create(c.newStep(id, acct)).Error
	}},
	{name: "step.create_select", form: "2", weight: 2, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Select(id, account_id, runbook_id, name, delay_duration).Create(&Step{ID: %s})", id)
		return c.db.Select("id", "account_id", "runbook_id", "name", "delay_duration").Create(c.newStep(id, acct)).Error
	}},
	{name: "step.create_returning_id", form: "2", weight: 2, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Clauses(Returning{id}).Create(&Step{ID: %s})", id)
		return c.db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}}}).Create(c.newStep(id, acct)).Error
	}},
	{name: "sample.create_returning_id", form: "2", weight: 2, run: func(c *call) error {
		c.say("Clauses(Returning{id}).Create(&Sample{})")
		return c.db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}}}).Create(c.newSample(false)).Error
	}},

	// (3) updates and deletes with a caller's partial RETURNING.
	{name: "step.update_returning_id", form: "3", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Clauses(Returning{id}).Model(&Step{ID: %s}).Update(name)", id)
		return c.db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}}}).Model(&runbooks.Step{ID: id}).Update("name", plainString(c.rng, "ret")).Error
	}},
	{name: "step.delete_returning_id", form: "3", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Clauses(Returning{id}).Delete(&Step{ID: %s})", id)
		return c.db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "id"}}}).Delete(&runbooks.Step{ID: id}).Error
	}},

	// (4) SQLite's INSERT OR IGNORE / OR REPLACE.
	{name: "step.insert_or_ignore", form: "4", weight: 2, only: "sqlite", run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Clauses(Insert{Modifier: OR IGNORE}).Create(&Step{ID: %s})", id)
		return c.db.Clauses(clause.Insert{Modifier: "OR IGNORE"}).Create(c.newStep(id, acct)).Error
	}},
	{name: "step.insert_or_replace", form: "4", weight: 2, only: "sqlite", run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Clauses(Insert{Modifier: OR REPLACE}).Create(&Step{ID: %s})", id)
		return c.db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).Create(c.newStep(id, acct)).Error
	}},

	// (5) writes naming the table without the registered model.
	{name: "step.table_leading_space", form: "5", weight: 1, run: tableUpdate(" steps")},
	{name: "step.table_quoted", form: "5", weight: 1, run: tableUpdate(`"steps"`)},
	{name: "step.table_upper_case", form: "5", weight: 1, only: "sqlite", run: tableUpdate("Steps")},
	{name: "step.alias_struct_update", form: "5", weight: 1, run: func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Model(&stepAlias{ID: %s}).Updates(name) (a second struct, TableName steps)", id)
		return c.db.Model(&stepAlias{ID: id}).Updates(map[string]any{"name": plainString(c.rng, "alias")}).Error
	}},
	{name: "step.alias_struct_create", form: "5", weight: 1, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say("Create(&stepAlias{ID: %s})", id)
		return c.db.Create(&stepAlias{ID: id, AccountID: acct, RunbookID: c.e.runbookOf(acct), Name: "alias"}).Error
	}},
	{name: "step.table_struct_create", form: "5", weight: 1, run: func(c *call) error {
		id, acct := c.stepSlot()
		c.say(`Table("steps").Create(&stepRow{ID: %s}) (an unregistered struct)`, id)
		return c.db.Table("steps").Create(&stepRow{ID: id, AccountID: acct, RunbookID: c.e.runbookOf(acct), Name: "row", DelayDuration: "PT0S"}).Error
	}},

	// (6) primary-key change.
	{name: "step.update_primary_key", form: "6", weight: 1, run: func(c *call) error {
		id, _ := c.stepSlot()
		to, _ := c.stepSlot()
		c.say("Model(&Step{ID: %s}).Update(id, %s)", id, to)
		return c.db.Model(&runbooks.Step{ID: id}).Update("id", to).Error
	}},

	// (8) account moves and gating inside transactions that roll back.
	{name: "step.move_account", form: "8", weight: 2, run: func(c *call) error {
		i := c.rng.IntN(stepSlots)
		from := accounts[i%len(accounts)]
		if from == accounts[2] {
			from = accounts[0]
		}
		to := accounts[0] + accounts[1] - from
		c.say("Model(&Step{ID: %s}).Where(account_id in 1, 2).Update(account_id, %d)", c.e.steps[i], to)
		// Only between recorded accounts: a record coming from an account
		// that is not recorded has a history that starts late.
		return c.db.Model(&runbooks.Step{ID: c.e.steps[i]}).Where("account_id IN ?", accounts[:2]).Update("account_id", to).Error
	}},
	{name: "gating.disable_rolled_back", form: "8", weight: 2, gated: true, run: func(c *call) error {
		c.say("DisableAccount(%d) in a transaction that rolls back", accounts[0])
		_, err := audit.DisableAccount(c.e.Ctx, c.db, accounts[0])
		return err
	}},
	{name: "gating.enable_rolled_back", form: "8", weight: 2, gated: true, run: func(c *call) error {
		c.say("EnableAccount(%d) in a transaction that rolls back", accounts[2])
		_, err := audit.EnableAccount(c.e.Ctx, c.db, accounts[2])
		return err
	}},

	// (9), (12) value classes.
	{name: "sample.create", form: "writes", weight: 3, run: func(c *call) error {
		s := c.newSample(false)
		c.say("Create(&Sample{account %d})", s.AccountID)
		return c.db.Create(s).Error
	}},
	{name: "gauge.create", form: "writes", weight: 2, run: func(c *call) error {
		g := c.newGauge(false)
		c.say("Create(&Gauge{account %d})", g.AccountID)
		return c.db.Create(g).Error
	}},
	{name: "sample.create_values", form: "9", weight: 3, run: func(c *call) error {
		s := c.newSample(true)
		c.say("Create(&Sample{account %d})", s.AccountID)
		return c.db.Create(s).Error
	}},
	{name: "sample.update_values", form: "9", weight: 4, run: func(c *call) error {
		id := c.intKey(tSample)
		m := c.exoticChanges(true)
		c.say("Model(&Sample{ID: %d}).Updates(%s)", id, clip(fmt.Sprint(m), 80))
		return c.db.Model(&Sample{ID: id}).Updates(m).Error
	}},
	{name: "gauge.create_values", form: "9", weight: 3, run: func(c *call) error {
		g := c.newGauge(true)
		c.say("Create(&Gauge{account %d})", g.AccountID)
		return c.db.Create(g).Error
	}},
	{name: "gauge.update_values", form: "9", weight: 3, run: func(c *call) error {
		id := c.intKey(tGauge)
		m := c.exoticChanges(false)
		c.say("Model(&Gauge{ID: %d}).Updates(%s)", id, clip(fmt.Sprint(m), 80))
		return c.db.Model(&Gauge{ID: id}).Updates(m).Error
	}},
	{name: "step.update_values", form: "9", weight: 2, run: func(c *call) error {
		id, _ := c.stepSlot()
		var m map[string]any
		if c.rng.IntN(2) == 0 {
			s, class := exoticString(c.rng)
			m = map[string]any{"name": s}
			c.say("value class: %s", class)
		} else {
			j, class := exoticJSON(c.rng)
			m = map[string]any{"config": j}
			c.say("value class: %s", class)
		}
		c.say("Model(&Step{ID: %s}).Updates(%s)", id, clip(fmt.Sprint(m), 80))
		return c.db.Model(&runbooks.Step{ID: id}).Updates(m).Error
	}},
	{name: "sample.delete", form: "writes", weight: 2, run: func(c *call) error {
		id := c.intKey(tSample)
		hard := c.rng.IntN(2) == 0
		c.say("Delete(&Sample{ID: %d}), Unscoped: %t", id, hard)
		q := c.db
		if hard {
			q = q.Unscoped()
		}
		return q.Delete(&Sample{ID: id}).Error
	}},
	{name: "gauge.delete", form: "writes", weight: 1, run: func(c *call) error {
		id := c.intKey(tGauge)
		c.say("Delete(&Gauge{ID: %d})", id)
		return c.db.Delete(&Gauge{ID: id}).Error
	}},

	// (13) new records with database-assigned keys: nested create, Save of a slice.
	{name: "sample.create_nested", form: "13", weight: 2, run: func(c *call) error {
		s := c.newSample(false)
		for range 1 + c.rng.IntN(2) {
			g := c.newGauge(false)
			g.AccountID = s.AccountID
			s.Gauges = append(s.Gauges, *g)
		}
		c.say("Create(&Sample{Gauges: %d new})", len(s.Gauges))
		return c.db.Create(s).Error
	}},
	{name: "sample.save_slice", form: "13", weight: 2, run: func(c *call) error {
		batch := []Sample{*c.newSample(false), *c.newSample(false)}
		c.say("Save(&[]Sample{2 new})")
		return c.db.Save(&batch).Error
	}},
}

// tableUpdate is the op body of a batch update through db.Table(name).
func tableUpdate(name string) func(c *call) error {
	return func(c *call) error {
		id, _ := c.stepSlot()
		c.say("Table(%q).Where(id = %s).Updates(name)", name, id)
		return c.db.Table(name).Where("id = ?", id).Updates(map[string]any{"name": plainString(c.rng, "tbl")}).Error
	}
}

func opNamed(name string) *op {
	for i := range ops {
		if ops[i].name == name {
			return &ops[i]
		}
	}
	return nil
}
