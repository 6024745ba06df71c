package audit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/uuid"
	"github.com/gormaudit/gormaudit/runbooks"
)

// TestAnErrorInTheChangeItselfIsNotAnAuditError makes the change's own SQL
// fail (an expression calling a function that does not exist): the caller
// gets the database's error as is, not a *audit.WriteError, and nothing is
// written. On PostgreSQL the change and its audit rows are one statement,
// so the error is told apart by where in the statement the database found
// it.
func TestAnErrorInTheChangeItselfIsNotAnAuditError(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	before := b.audits(t)

	err := b.w().Model(&w.steps[0]).Update("position", gorm.Expr("gormaudit_no_such_function(position)")).Error
	require.Error(t, err)
	var we *audit.WriteError
	require.False(t, errors.As(err, &we), "the change's own error must not be blamed on its audit: %v", err)

	var s runbooks.Step
	require.NoError(t, b.db.Take(&s, "id = ?", w.steps[0].ID).Error)
	require.Equal(t, w.steps[0].Position, s.Position)
	require.Len(t, b.audits(t), len(before))
}

// TestAMissingPrivilegeOnTheAuditsTableIsAnAuditError writes as a role that
// may write steps but not audit rows. PostgreSQL reports no position for a
// missing privilege; the single statement's failure is the audit's: a
// *audit.WriteError, and nothing is written.
func TestAMissingPrivilegeOnTheAuditsTableIsAnAuditError(t *testing.T) {
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("SQLite has no privileges")
	}
	t.Parallel()
	b := setup(t, audit.Config{})
	w := newWorld(t, b)
	before := b.audits(t)

	role := "gormaudit_" + strings.ReplaceAll(uuid.New(), "-", "")[:12]
	var schema string
	require.NoError(t, b.db.Raw(`SELECT current_schema()`).Scan(&schema).Error)
	for _, sql := range []string{
		`CREATE ROLE ` + role,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA ` + schema + ` TO ` + role,
		`REVOKE INSERT ON audits FROM ` + role,
	} {
		require.NoError(t, b.db.Exec(sql).Error, sql)
	}
	t.Cleanup(func() {
		require.NoError(t, b.db.Exec(`DROP OWNED BY `+role).Error)
		require.NoError(t, b.db.Exec(`DROP ROLE `+role).Error)
	})

	err := b.w().Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SET LOCAL ROLE ` + role).Error; err != nil {
			return err
		}
		return tx.Create(&runbooks.Step{AccountID: 7, RunbookID: w.runbook.ID, Name: "unaudited"}).Error
	})
	var we *audit.WriteError
	require.ErrorAs(t, err, &we)
	require.Equal(t, audit.ActionCreate, we.Action)
	require.Len(t, b.audits(t), len(before))
}
