package httpapi

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/runbooks"

	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// TestPlansUseIndexes asks PostgreSQL's planner, on 200,000 analysed rows
// over 100 accounts, how it runs the page, count and polling statements of
// every filter, and fails on any sequential scan of audits.
func TestPlansUseIndexes(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("the plans asserted are PostgreSQL's")
	}
	e := setup(t, nil)
	seedRows(t, e.db, 200_000, 100)

	at := func(sec int) *time.Time { v := seedBase.Add(time.Duration(sec) * time.Second); return &v }
	filters := map[string]auditlist.Filter{
		"none":                   {},
		"auditable_type":         {AuditableType: runbooks.TypeStep},
		"auditable_type runbook": {AuditableType: runbooks.TypeRunbook},
		"auditable_id":           {AuditableID: "r1234"},
		"auditable_id and type":  {AuditableID: "r1235", AuditableType: runbooks.TypeStep},
		"runbook_id":             {RunbookID: "r1230"},
		"runbook_id steps only":  {RunbookID: "r1230", AuditableType: runbooks.TypeStep},
		"user_id":                {UserID: "u7"},
		"action":                 {Action: audit.ActionDestroy},
		"since":                  {Since: at(150_000)},
		"until":                  {Until: at(50_000)},
		"since and until":        {Since: at(50_000), Until: at(60_000)},
		"user_id and action":     {UserID: "u7", Action: audit.ActionUpdate},
		"everything":             {AuditableType: runbooks.TypeStep, RunbookID: "r1230", UserID: "u7", Action: audit.ActionUpdate, Since: at(1), Until: at(200_000)},
		"user_id, since":         {UserID: "u7", Since: at(100_000)},
	}
	// Filters that have an index of their own must use it.
	uses := map[string]string{
		"auditable_id": "idx_audits_auditable_version",
		"runbook_id":   "idx_audits_associated",
		"user_id":      "idx_audits_account_user",
	}
	// The tables that hold the rows: audits, or in the partitioned layout
	// the partitions that do (an empty one may be scanned: it costs
	// nothing), whose indexes PostgreSQL names after their columns.
	holders := []string{"audits"}
	if dbtest.Layout() == dbtest.Partitioned {
		holders = nil
		require.NoError(t, e.db.Raw(`SELECT DISTINCT tableoid::regclass::text FROM audits`).Scan(&holders).Error)
		uses = map[string]string{"auditable_id": "_auditable_type_auditable_id_version_idx",
			"runbook_id": "_associated_type_associated_id_idx", "user_id": "_account_id_user_id_created_at_idx"}
	}
	seqScan := regexp.MustCompile(`Seq Scan on (` + strings.Join(holders, "|") + `)\b`)
	explain := func(name string, s auditlist.Stmt) string {
		t.Helper()
		var lines []string
		require.NoError(t, e.db.Raw("EXPLAIN "+s.SQL, s.Args...).Scan(&lines).Error, name)
		plan := strings.Join(lines, "\n")
		require.False(t, seqScan.MatchString(plan), "sequential scan of the rows: %s:\n%s\n%s", name, s.SQL, plan)
		return plan
	}
	for name, f := range filters {
		for _, desc := range []bool{true, false} {
			plan := explain(name+" page 1", auditlist.Page(&f, 7, desc, 1, 20))
			if idx, ok := uses[name]; ok {
				require.Contains(t, plan, idx, "%s page 1:\n%s", name, plan)
			}
			explain(name+" page 50", auditlist.Page(&f, 7, desc, 50, 20))
		}
		explain(name+" count", auditlist.Count(&f, 7, 10_000))
		explain(name+" poll", auditlist.Poll(&f, 7, auditlist.Position{TxID: 0, ID: 140_000}, 20, true))
	}
	_, err := auditlist.PositionOf(t.Context(), e.db, 7, 140_000)
	require.ErrorIs(t, err, auditlist.ErrNotInLog, "row 140000 is account 71's")
	var lines []string
	require.NoError(t, e.db.Raw(`EXPLAIN SELECT transaction_id FROM audits WHERE account_id = ? AND id = ?`, 7, 140_000).Scan(&lines).Error)
	require.False(t, seqScan.MatchString(strings.Join(lines, "\n")))
}

// TestRecordPlansNeverReadTheAccount asks for the generic plans PostgreSQL
// may reuse for prepared statements (the driver prepares them) of the
// record and runbook filters, on the seeded rows where account 1 holds
// half of the log. A generic plan takes one account for 1/100 of the rows,
// and could read account 1's index (half the table) beside the record's
// few entries; the statements must find the rows by the record alone.
func TestRecordPlansNeverReadTheAccount(t *testing.T) {
	t.Parallel()
	if dbtest.Dialect() != dbtest.Postgres {
		t.Skip("the plans asserted are PostgreSQL's")
	}
	e := setup(t, nil)
	seedRows(t, e.db, 100_000, 100)
	filters := map[string]auditlist.Filter{
		"auditable_id":          {AuditableID: "r1240"},
		"runbook_id":            {RunbookID: "r1240"},
		"runbook_id steps only": {RunbookID: "r1240", AuditableType: runbooks.TypeStep},
	}
	// An index led by the account: the plain layout's names, or a
	// partition's, which PostgreSQL names after the columns. A scan of a
	// partition that holds none of the rows costs nothing.
	accountIndex := regexp.MustCompile(`idx_audits_account|_account_id_\w*idx\b`)
	holders := []string{"audits"}
	if dbtest.Layout() == dbtest.Partitioned {
		holders = nil
		require.NoError(t, e.db.Raw(`SELECT DISTINCT tableoid::regclass::text FROM audits`).Scan(&holders).Error)
	}
	seqScan := regexp.MustCompile(`Seq Scan on (` + strings.Join(holders, "|") + `)\b`)
	generic := func(name string, s auditlist.Stmt) {
		t.Helper()
		st := e.db.Session(&gorm.Session{DryRun: true}).Raw(s.SQL, s.Args...).Statement
		err := e.db.Connection(func(conn *gorm.DB) error {
			for _, sql := range []string{`SET plan_cache_mode = force_generic_plan`, `PREPARE generic AS ` + st.SQL.String()} {
				if err := conn.Exec(sql).Error; err != nil {
					return err
				}
			}
			defer conn.Exec(`DEALLOCATE generic`)
			// EXECUTE takes its values as literals, not parameters.
			values := make([]string, len(st.Vars))
			for i, v := range st.Vars {
				if s, ok := v.(string); ok {
					values[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
				} else {
					values[i] = fmt.Sprint(v)
				}
			}
			var lines []string
			if err := conn.Raw(`EXPLAIN EXECUTE generic(` + strings.Join(values, ", ") + `)`).Scan(&lines).Error; err != nil {
				return err
			}
			plan := strings.Join(lines, "\n")
			require.False(t, accountIndex.MatchString(plan), "%s reads the account's index:\n%s\n%s", name, st.SQL.String(), plan)
			require.False(t, seqScan.MatchString(plan), "%s:\n%s", name, plan)
			return nil
		})
		require.NoError(t, err, name)
	}
	for name, f := range filters {
		generic(name+" page", auditlist.Page(&f, 1, true, 1, 20))
		generic(name+" count", auditlist.Count(&f, 1, 10_000))
		generic(name+" poll", auditlist.Poll(&f, 1, auditlist.Position{}, 20, true))
	}
}
