package httpapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// seedBase is created_at of the first seeded row; row g is g seconds later.
var seedBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// seedRows inserts rows 1..n in one statement, the database generating
// them: records of 4 versions each (create, update, update, destroy), in
// groups of 5 records (a runbook "r<k>" and four steps associated with
// it), 50 users, one row a second. Account 1 is large: it holds every
// other group, half of the rows; the other groups are spread round-robin
// over accounts 2..accounts. All rows have transaction id 0, as rows
// written before the column existed do: the stream is then in id order.
func seedRows(t testing.TB, db *gorm.DB, n, accounts int) {
	t.Helper()
	// rec = (g-1)/4, grp = rec/5; the expressions are the same in both
	// dialects except for the series and the time arithmetic.
	cols := `account_id, auditable_id, auditable_type, associated_id, associated_type, user_id, user_type, action, audited_changes, version, created_at, transaction_id`
	sel := fmt.Sprintf(`SELECT
		CASE WHEN ((g-1)/20) %% 2 = 0 THEN 1 ELSE 2 + ((g-1)/20) %% (%[1]d - 1) END,
		'r' || ((g-1)/4),
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '%[2]s' ELSE '%[3]s' END,
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '' ELSE 'r' || (((g-1)/20)*5) END,
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '' ELSE '%[2]s' END,
		'u' || (g %% 50), 'User',
		CASE (g-1) %% 4 WHEN 0 THEN 'create' WHEN 3 THEN 'destroy' ELSE 'update' END,
		'{"name":"x"}', 1 + (g-1) %% 4, CREATED_AT, 0`, accounts, runbooks.TypeRunbook, runbooks.TypeStep)
	var sql string
	if dbtest.Dialect() == dbtest.Postgres {
		sql = `INSERT INTO audits (` + cols + `) ` +
			strings.Replace(sel, "CREATED_AT", `'2024-01-01T00:00:00Z'::timestamptz + g * interval '1 second'`, 1) +
			fmt.Sprintf(` FROM generate_series(1, %d) AS g`, n)
	} else {
		sql = `INSERT INTO audits (` + cols + `) ` +
			fmt.Sprintf(`WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g+1 FROM s WHERE g < %d) `, n) +
			strings.Replace(sel, "CREATED_AT", `strftime('%Y-%m-%d %H:%M:%S', '2024-01-01 00:00:00', '+' || g || ' seconds') || '+00:00'`, 1) +
			` FROM s`
	}
	require.NoError(t, db.Exec(sql).Error)
	require.NoError(t, db.Exec(`ANALYZE audits`).Error)
}
