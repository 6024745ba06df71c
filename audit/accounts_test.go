package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// clock is a settable audit.Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestOnlyEnabledAccountsAreRecorded(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	b := setup(t, audit.Config{EnabledAccountsOnly: true, Now: clk.Now})
	ctx := context.Background()

	off := runbooks.Runbook{AccountID: 1, Name: "before enabling"}
	require.NoError(t, b.w().Create(&off).Error)
	require.Empty(t, b.audits(t), "account 1 is not enabled yet")

	clk.Advance(time.Minute)
	status, err := audit.EnableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	require.True(t, status.Enabled)
	require.Equal(t, clk.Now(), status.EnabledAt.UTC())

	require.NoError(t, b.w().Model(&off).Update("name", "after enabling").Error)
	other := runbooks.Runbook{AccountID: 2, Name: "other account"}
	require.NoError(t, b.w().Create(&other).Error)
	rows := b.audits(t)
	require.Len(t, rows, 1, "only the enabled account's write is recorded, from the moment of enabling")
	require.Equal(t, int64(1), rows[0].AccountID)
	require.Equal(t, audit.ActionUpdate, rows[0].Action)
	require.Equal(t, 1, rows[0].Version, "history starts at enabling")
	require.False(t, rows[0].CreatedAt.Before(status.EnabledAt))

	// Enabling again keeps the original moment.
	clk.Advance(time.Minute)
	again, err := audit.EnableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	require.Equal(t, status.EnabledAt.UTC(), again.EnabledAt.UTC())

	disabled, err := audit.DisableAccount(ctx, b.db, 1)
	require.NoError(t, err)
	require.False(t, disabled.Enabled)
	require.NotNil(t, disabled.DisabledAt)
	require.NoError(t, b.w().Model(&off).Update("name", "after disabling").Error)
	require.Len(t, b.audits(t), 1)

	stored, err := audit.Account(ctx, b.db, 1)
	require.NoError(t, err)
	require.False(t, stored.Enabled)
	_, err = audit.Account(ctx, b.db, 99)
	require.ErrorIs(t, err, audit.ErrAccountNotFound)
}

// TestGatingIsDecidedByTheInsert shows the cost and the delay of gating:
// no write reads audit_accounts through a query of its own, and a change
// to audit_accounts made elsewhere (another process, a direct write) is
// seen by the very next write.
func TestGatingIsDecidedByTheInsert(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{EnabledAccountsOnly: true})
	reads := 0
	require.NoError(t, b.db.Callback().Query().After("gorm:query").Register("test:count_account_reads", func(db *gorm.DB) {
		if db.Statement.Table == audit.AccountsTableName {
			reads++
		}
	}))

	rb := runbooks.Runbook{AccountID: 5, Name: "r"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "unrecorded").Error)
	require.Empty(t, b.audits(t))

	// Another process enables account 5: a direct write to the table.
	require.NoError(t, b.db.Create(&audit.AccountStatus{AccountID: 5, Enabled: true, EnabledAt: time.Now()}).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "recorded").Error)
	require.NoError(t, b.w().Model(&rb).Update("description", "also recorded").Error)
	require.Len(t, b.audits(t), 2, "the next write sees the enabled account")
	require.Zero(t, reads, "no write reads the enabled accounts with a query of its own")
}

// TestEnablingInARolledBackTransactionChangesNothing: gating keeps no
// in-memory copy that a rolled-back EnableAccount or DisableAccount could
// leave changed.
func TestEnablingInARolledBackTransactionChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{EnabledAccountsOnly: true})
	ctx := context.Background()
	rollback := errors.New("roll back")
	_, err := audit.EnableAccount(ctx, b.db, 2)
	require.NoError(t, err)

	err = b.db.Transaction(func(tx *gorm.DB) error {
		if _, err := audit.EnableAccount(ctx, tx, 1); err != nil {
			return err
		}
		if _, err := audit.DisableAccount(ctx, tx, 2); err != nil {
			return err
		}
		return rollback
	})
	require.ErrorIs(t, err, rollback)
	_, err = audit.Account(ctx, b.db, 1)
	require.ErrorIs(t, err, audit.ErrAccountNotFound)

	one := runbooks.Runbook{AccountID: 1, Name: "account 1"}
	two := runbooks.Runbook{AccountID: 2, Name: "account 2"}
	require.NoError(t, b.w().Create(&one).Error)
	require.NoError(t, b.w().Create(&two).Error)
	rows := b.audits(t)
	require.Len(t, rows, 1, "account 1 is still off and account 2 still on")
	require.Equal(t, int64(2), rows[0].AccountID)
}

// TestEnablingTakesEffectAtCommit: while the enabling transaction is open,
// writes on other connections are not recorded; once it commits, they are.
// PostgreSQL only: SQLite's single writer cannot write while another
// transaction holds its write lock.
func TestEnablingTakesEffectAtCommit(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has one writer: no other connection can write while the enabling transaction is open")
	}
	b := setup(t, audit.Config{EnabledAccountsOnly: true})
	ctx := context.Background()
	rb := runbooks.Runbook{AccountID: 1, Name: "r"}
	require.NoError(t, b.w().Create(&rb).Error)

	tx := b.db.Begin()
	require.NoError(t, tx.Error)
	defer tx.Rollback()
	_, err := audit.EnableAccount(ctx, tx, 1)
	require.NoError(t, err)
	require.NoError(t, b.w().Model(&rb).Update("name", "while enabling").Error) // another connection of the pool
	require.Empty(t, b.audits(t), "an uncommitted enable does not affect other connections")

	require.NoError(t, tx.Commit().Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "after commit").Error)
	rows := b.audits(t)
	require.Len(t, rows, 1)
	require.Equal(t, []any{"while enabling", "after commit"}, decoded(t, rows[0].AuditedChanges)["name"])
}

// TestGatingWithManyEnabledAccounts enables 100,000 accounts and writes on
// both insert paths: the fused statement of PostgreSQL (a create, update and
// delete) and the portable INSERT (an upsert, which every database runs as
// the write then one INSERT of its audit rows). Only the enabled account's
// writes are recorded, and no statement grows with the number of accounts.
func TestGatingWithManyEnabledAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{EnabledAccountsOnly: true})
	const accounts = 100_000
	require.NoError(t, enableMany(b.db, accounts))
	var n int64
	require.NoError(t, b.db.Model(&audit.AccountStatus{}).Where("enabled").Count(&n).Error)
	require.EqualValues(t, accounts, n)

	type row struct {
		Account int64
		Action  audit.Action
		ID      string
	}
	var want []row
	for _, acct := range []int64{accounts, accounts + 1} {
		rb := runbooks.Runbook{AccountID: acct, Name: "fused"}
		require.NoError(t, b.w().Create(&rb).Error)
		require.NoError(t, b.w().Model(&rb).Update("name", "renamed").Error)
		require.NoError(t, b.w().Delete(&rb).Error)
		up := runbooks.Runbook{ID: fmt.Sprintf("upsert-%d", acct), AccountID: acct, Name: "portable"}
		require.NoError(t, b.w().Clauses(clause.OnConflict{UpdateAll: true}).Create(&up).Error)
		if acct == accounts {
			want = append(want, row{acct, audit.ActionCreate, rb.ID}, row{acct, audit.ActionUpdate, rb.ID},
				row{acct, audit.ActionDestroy, rb.ID}, row{acct, audit.ActionCreate, up.ID})
		}
	}
	var got []row
	for _, a := range b.audits(t) {
		got = append(got, row{a.AccountID, a.Action, a.AuditableID})
	}
	require.Empty(t, cmp.Diff(want, got), "only the enabled account is recorded (-want +got)")
}

// BenchmarkGating compares audited writes without gating and with gating
// over 100,000 enabled accounts, side by side in one run (alternating):
// each iteration creates a step, updates it and deletes it, each write in
// its own transaction. It reports the time of a cycle on both and the ratio
// gated/ungated.
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench Gating -benchtime 2000x ./audit/
func BenchmarkGating(b *testing.B) {
	open := func(gated bool) (*gorm.DB, string) {
		bd := setup(b, audit.Config{EnabledAccountsOnly: gated})
		if gated {
			require.NoError(b, enableMany(bd.db, 100_000))
		}
		rb := runbooks.Runbook{AccountID: 1, Name: "bench"}
		require.NoError(b, bd.w().Create(&rb).Error)
		return bd.w(), rb.ID
	}
	plain, plainRunbook := open(false)
	gated, gatedRunbook := open(true)
	var spent [2]time.Duration
	cycle := func(db *gorm.DB, runbookID string, spent *time.Duration, i int) {
		t0 := time.Now()
		s := runbooks.Step{AccountID: 1, RunbookID: runbookID, Name: "step", Position: i}
		require.NoError(b, db.Create(&s).Error)
		require.NoError(b, db.Model(&s).Updates(map[string]any{"name": fmt.Sprint("step ", i), "position": i + 1}).Error)
		require.NoError(b, db.Delete(&s).Error)
		*spent += time.Since(t0)
	}
	for i := range 20 {
		cycle(plain, plainRunbook, new(time.Duration), i)
		cycle(gated, gatedRunbook, new(time.Duration), i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			cycle(plain, plainRunbook, &spent[0], i)
			cycle(gated, gatedRunbook, &spent[1], i)
		} else {
			cycle(gated, gatedRunbook, &spent[1], i)
			cycle(plain, plainRunbook, &spent[0], i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(spent[0].Microseconds())/float64(b.N), "µs/ungated-cycle")
	b.ReportMetric(float64(spent[1].Microseconds())/float64(b.N), "µs/gated-cycle")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "x-gated")
	b.ReportMetric(0, "ns/op") // the sum of both sides means nothing
}

// enableMany enables accounts 1..n with one statement.
func enableMany(db *gorm.DB, n int) error {
	bulk := `INSERT INTO audit_accounts (account_id, enabled, enabled_at)
		SELECT g, TRUE, CURRENT_TIMESTAMP FROM generate_series(1, ?) AS g`
	if dbtest.Dialect() == dbtest.SQLite {
		bulk = `WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < ?)
			INSERT INTO audit_accounts (account_id, enabled, enabled_at) SELECT g, TRUE, CURRENT_TIMESTAMP FROM s`
	}
	return db.Exec(bulk, n).Error
}
