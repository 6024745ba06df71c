package difftest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/webhook"
)

// Actor writes every change the tester makes.
var Actor = audit.Actor{ID: "5b7e2c1a-9d3f-4e8b-a6c0-1f2e3d4c5b6a", Type: "User"}

// refuseComment marks writes whose audit rows a trigger refuses (the
// "swallow a failed audit" transactions).
const refuseComment = "difftest-refuse"

// accounts are the tenants records live in. In a gated run (the plugin's
// EnabledAccountsOnly) the last one is never enabled, so its records must
// have no audit rows at all.
var accounts = []int64{1, 2, 3}

const (
	stepSlots    = 8
	runbookSlots = 5 // the first len(accounts) exist from the start
)

// Env is one database under test: the runbook, audit, token and notifier
// tables, the tester's models, the plugin, and the keys records may take.
type Env struct {
	DB    *gorm.DB
	Ctx   context.Context
	PG    bool
	Gated bool

	steps    []string // step slot keys
	runbooks []string // runbook slot keys
}

// Open returns a fresh Env on dbtest's database for t. Its slot keys are
// drawn from seed, so that a sequence replays identically.
func Open(t testing.TB, seed uint64, gated bool) *Env {
	t.Helper()
	db := dbtest.Open(t)
	// gorm's clock stamps soft deletes; at the microsecond, so that only
	// the value-class ops probe sub-microsecond times.
	db.Config.NowFunc = func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	e := &Env{DB: db, Ctx: audit.WithActor(context.Background(), Actor), PG: dbtest.Dialect() == dbtest.Postgres, Gated: gated}
	if err := e.setup(); err != nil {
		t.Fatalf("difftest: setup: %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5107))
	for range stepSlots {
		e.steps = append(e.steps, slotID(rng))
	}
	for range runbookSlots {
		e.runbooks = append(e.runbooks, slotID(rng))
	}
	for i, acct := range accounts {
		rb := runbooks.Runbook{ID: e.runbooks[i], AccountID: acct, Name: fmt.Sprintf("runbook %d", i)}
		if err := e.w().Create(&rb).Error; err != nil {
			t.Fatalf("difftest: create runbook: %v", err)
		}
	}
	return e
}

func (e *Env) setup() error {
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { return runbooks.Migrate(ctx, e.DB) },
		func() error { return audit.Migrate(ctx, e.DB) },
		func() error { return httpapi.Migrate(ctx, e.DB) },
		func() error { return webhook.Migrate(ctx, e.DB) },
		func() error { return e.DB.AutoMigrate(&Sample{}, &Gauge{}) },
		e.installShadow,
		func() error {
			return e.DB.Use(audit.New(audit.Config{Models: Models(), EnabledAccountsOnly: e.Gated}))
		},
		e.installRefusal,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	for _, acct := range accounts {
		if e.Gated && acct == accounts[len(accounts)-1] {
			continue
		}
		if _, err := audit.EnableAccount(ctx, e.DB, acct); err != nil {
			return err
		}
	}
	return nil
}

// installRefusal adds a trigger that fails the insert of audit rows whose
// comment is refuseComment.
func (e *Env) installRefusal() error {
	if e.PG {
		if err := e.DB.Exec(`CREATE FUNCTION difftest_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'difftest: audit insert refused' USING ERRCODE = 'disk_full'; END $$`).Error; err != nil {
			return err
		}
		return e.DB.Exec(`CREATE TRIGGER difftest_refuse BEFORE INSERT ON audits
			FOR EACH ROW WHEN (NEW.comment = '` + refuseComment + `') EXECUTE FUNCTION difftest_refuse()`).Error
	}
	return e.DB.Exec(`CREATE TRIGGER difftest_refuse BEFORE INSERT ON audits
		WHEN NEW.comment = '` + refuseComment + `' BEGIN SELECT RAISE(ABORT, 'difftest: audit insert refused'); END`).Error
}

// w is the audited database with the tester's actor.
func (e *Env) w() *gorm.DB { return e.DB.WithContext(e.Ctx) }

// recorded reports whether the plugin audits writes of account.
func (e *Env) recorded(account int64) bool {
	return !e.Gated || account != accounts[len(accounts)-1]
}

// runbookOf returns the runbook slot key of an account's first runbook.
func (e *Env) runbookOf(account int64) string { return e.runbooks[account-1] }

func slotID(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff,
		rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
}
