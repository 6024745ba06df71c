package audit_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

// bundle is one test's audited database, from the shared fixture.
type bundle struct {
	db     *gorm.DB // audited
	plugin *audit.Plugin
	ctx    context.Context // carries fixture.Actor
}

// setup opens the shared fixture with the plugin registered with cfg
// (runbooks.Models() when cfg.Models is nil).
func setup(t testing.TB, cfg audit.Config) *bundle {
	t.Helper()
	e := fixture.Open(t, &fixture.Options{Config: cfg})
	return &bundle{db: e.DB, plugin: e.Plugin, ctx: e.Ctx}
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
