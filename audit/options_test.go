package audit_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// The history calls take a *audit.ReadOptions and the reverts a
// *audit.RevertOptions. These assignments stop compiling if a signature
// changes, so that a revert's options (DryRun, Plan, Comment) can never be
// passed to a history call, where they would do nothing.
var (
	_ func(context.Context, *gorm.DB, string, string, int, *audit.ReadOptions) (*audit.State, error)       = audit.StateAt
	_ func(context.Context, *gorm.DB, string, string, time.Time, *audit.ReadOptions) (*audit.State, error) = audit.StateAsOf
	_ func(context.Context, *gorm.DB, []audit.Ref, time.Time, *audit.ReadOptions) ([]*audit.State, error)  = audit.StatesAsOf
	_ func(context.Context, *gorm.DB, []audit.Ref, int64, *audit.ReadOptions) ([]*audit.State, error)      = audit.StatesAfterAudit
	_ func(context.Context, *gorm.DB, string, string, int, int, *audit.ReadOptions) (audit.Changes, error) = audit.Diff

	_ func(context.Context, *gorm.DB, string, string, int, *audit.RevertOptions) error       = audit.Revert
	_ func(context.Context, *gorm.DB, string, string, time.Time, *audit.RevertOptions) error = audit.RevertAsOf
	_ func(context.Context, *gorm.DB, []audit.Ref, time.Time, *audit.RevertOptions) error    = audit.RevertAllAsOf
	_ func(context.Context, *gorm.DB, []audit.Ref, int64, *audit.RevertOptions) error        = audit.RevertAllAfterAudit
)

// The assignments above would still compile if RevertOptions were made an
// alias of ReadOptions, or convertible to it; this test would not pass.
func TestRevertOptionsAreNotReadOptions(t *testing.T) {
	t.Parallel()
	read, revert := reflect.TypeFor[*audit.ReadOptions](), reflect.TypeFor[*audit.RevertOptions]()
	require.NotEqual(t, read, revert)
	require.False(t, revert.AssignableTo(read), "a *RevertOptions must not be usable as a *ReadOptions")
	require.False(t, revert.ConvertibleTo(read), "a *RevertOptions must not convert to a *ReadOptions")
}

// A dry run without a plan writes nothing and reports the errors the revert
// would return: it checks that a revert would succeed.
func TestRevertDryRunWithoutPlan(t *testing.T) {
	t.Parallel()
	b, _ := histSetup(t, audit.Config{})
	step, snaps := histFixture(t, b)
	before := len(b.audits(t))

	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{DryRun: true}))
	other := int64(8)
	err := audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{
		ReadOptions: audit.ReadOptions{AccountID: &other},
		DryRun:      true,
	})
	require.ErrorIs(t, err, audit.ErrOtherAccount)
	require.Len(t, b.audits(t), before, "a dry run writes nothing")
	requireStep(t, snaps[4], loadStep(t, b.db, step.ID))

	// Empty options are the defaults: the revert is written.
	require.NoError(t, audit.Revert(b.ctx, b.db, runbooks.TypeStep, step.ID, 2, &audit.RevertOptions{}))
	requireStep(t, snaps[2], loadStep(t, b.db, step.ID))
}
