package audit_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// The actor of the reference row.
var seedActor = audit.Actor{ID: "0d2e8479-c00b-44c7-bca4-01e60a3e8035", Type: "User"}

type bundle struct {
	db     *gorm.DB // audited
	plugin *audit.Plugin
	ctx    context.Context // carries seedActor
}

// setup opens a test database with the runbook tables, the audit tables and
// the plugin registered with cfg (runbooks.Models() when cfg.Models is nil).
func setup(t testing.TB, cfg audit.Config) *bundle {
	t.Helper()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, runbooks.Migrate(ctx, db))
	require.NoError(t, audit.Migrate(ctx, db))
	if cfg.Models == nil {
		cfg.Models = runbooks.Models()
	}
	p := audit.New(cfg)
	require.NoError(t, db.Use(p))
	return &bundle{db: db, plugin: p, ctx: audit.WithActor(ctx, seedActor)}
}

// w returns the audited database bound to the bundle's context.
func (b *bundle) w() *gorm.DB { return b.db.WithContext(b.ctx) }

// audits returns every audit row, oldest first.
func (b *bundle) audits(t testing.TB) []audit.Audit {
	t.Helper()
	var rows []audit.Audit
	require.NoError(t, b.db.Order("id").Find(&rows).Error)
	return rows
}

// auditsOf returns the audit rows of one record, by version.
func (b *bundle) auditsOf(t testing.TB, typ, id string) []audit.Audit {
	t.Helper()
	var rows []audit.Audit
	require.NoError(t, b.db.Where("auditable_type = ? AND auditable_id = ?", typ, id).Order("version").Find(&rows).Error)
	return rows
}

// decoded turns audited_changes into plain Go values for go-cmp.
func decoded(t testing.TB, c audit.Changes) map[string]any {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func ptr[T any](v T) *T { return &v }

var jsonUnmarshal = json.Unmarshal

func jsonNumber(i int) []byte {
	b, _ := json.Marshal(i)
	return b
}
