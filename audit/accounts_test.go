package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
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

// TestEnablementIsCachedAndRefreshed shows the cost and the delay of gating:
// the enabled accounts are read once per AccountRefresh, not per write, and a
// change made by another process is seen after at most AccountRefresh.
func TestEnablementIsCachedAndRefreshed(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	b := setup(t, audit.Config{EnabledAccountsOnly: true, AccountRefresh: 30 * time.Second, Now: clk.Now})
	reads := 0
	require.NoError(t, b.db.Callback().Query().After("gorm:query").Register("test:count_account_reads", func(db *gorm.DB) {
		if db.Statement.Table == audit.AccountsTableName {
			reads++
		}
	}))

	rb := runbooks.Runbook{AccountID: 5, Name: "r"}
	require.NoError(t, b.w().Create(&rb).Error)
	for i := 0; i < 20; i++ {
		require.NoError(t, b.w().Model(&rb).Update("name", string(rune('A'+i))).Error)
		require.NoError(t, b.w().Model(&rb).Update("description", string(rune('a'+i))).Error)
	}
	require.Equal(t, 1, reads, "41 writes within AccountRefresh read the enabled accounts once")

	// Another process enables account 5: a direct write to the table that
	// this plugin does not see until its copy expires.
	require.NoError(t, b.db.Create(&audit.AccountStatus{AccountID: 5, Enabled: true, EnabledAt: clk.Now()}).Error)
	require.NoError(t, b.w().Model(&rb).Update("name", "unseen").Error)
	require.Empty(t, b.audits(t))

	clk.Advance(30 * time.Second)
	require.NoError(t, b.w().Model(&rb).Update("name", "seen").Error)
	require.Equal(t, 2, reads)
	require.Len(t, b.audits(t), 1, "the change is seen within AccountRefresh")
}
