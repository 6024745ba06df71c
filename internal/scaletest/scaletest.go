// Package scaletest gives the scale benchmarks (BenchmarkWriteCycleAtScale
// in audit, BenchmarkListAtScale in httpapi) an audited database that
// already holds a large audit log, made by the database itself in a few
// INSERT … SELECT statements.
//
// The sizes come from [EnvRows] (for example
// GORMAUDIT_SCALE_ROWS=0,1000000,10000000), small by default so that CI's
// one iteration of every benchmark stays quick. Seeding 10^7 rows takes
// minutes; with [EnvKeep] set (PostgreSQL only) each size is seeded once
// into a schema of its own, gormaudit_scale_<layout>_<rows>, kept between
// runs and reused while its seed matches (drop the schema to seed again).
// With TEST_AUDIT_LAYOUT=partitioned such a schema has a partition per
// month of the seeded year; a fresh schema has dbtest's partitions, the
// seeded rows in the one before the current month.
//
// The seeded log has the shape of a real one: records of 4 rows each
// (create, update, update, destroy) in runbooks of 5 records (a runbook and
// 4 steps), UUID keys, 50 users, created_at spread evenly over the year
// before the seeding ([Span]) so that a log partitioned by time has rows in
// every partition. Account 1 holds every other runbook, half of the rows;
// the others are spread over accounts 2 to [Accounts]. Seeded rows have
// transaction id 0, as rows written before the column existed do: their
// place in the polling stream is their id.
package scaletest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
	"github.com/gormaudit/gormaudit/runbooks"
)

// EnvRows lists the sizes, in seeded audit rows, the scale benchmarks run
// at, separated by commas.
const EnvRows = "GORMAUDIT_SCALE_ROWS"

// EnvKeep, when set to anything but "" or "0", keeps each size's seeded
// schema between runs (PostgreSQL).
const EnvKeep = "GORMAUDIT_SCALE_KEEP"

// Accounts is the number of accounts the seeded rows belong to.
const Accounts = 100

// Span is how long before the seeding the first seeded row was written.
const Span = 365 * 24 * time.Hour

// seedVersion changes whenever the seeded rows or the audits table's
// indexes change, so that kept schemas of an older shape are seeded again.
const seedVersion = 2

// Rows returns the sizes of EnvRows, or def when it is not set.
func Rows(tb testing.TB, def ...int) []int {
	tb.Helper()
	raw := os.Getenv(EnvRows)
	if raw == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(f, "_", "")))
		if err != nil || n < 0 {
			tb.Fatalf("scaletest: %s=%q: %q is not a number of rows", EnvRows, raw, f)
		}
		out = append(out, n)
	}
	return out
}

// Log is an audited database holding a seeded log.
type Log struct {
	*fixture.Env
	// Rows is the number of seeded rows; rows written since (by earlier
	// runs on a kept schema) come after them.
	Rows int
	// From is created_at of the first seeded row; row g (1-based) was
	// written at From + (g-1)·Step.
	From time.Time
	Step time.Duration
}

// Open returns an audited database holding n seeded audit rows, the tables
// of opts.Migrations and opts.Accounts enabled. It is a fresh database
// unless EnvKeep is set on PostgreSQL.
func Open(tb testing.TB, n int, opts *fixture.Options) *Log {
	tb.Helper()
	keep := os.Getenv(EnvKeep) != "" && os.Getenv(EnvKeep) != "0"
	if !keep || dbtest.Dialect() != dbtest.Postgres {
		l := &Log{Env: fixture.Open(tb, opts), Rows: n}
		l.seed(tb)
		return l
	}
	layout := dbtest.Layout()
	db := dbtest.OpenSchema(tb, fmt.Sprintf("gormaudit_scale_%s_%d", layout, n))
	l := &Log{Rows: n}
	// One process seeds a schema at a time; the others wait and reuse it.
	err := db.Connection(func(conn *gorm.DB) error {
		lock := fmt.Sprintf("gormaudit scale %s %d", layout, n)
		if err := conn.Exec(`SELECT pg_advisory_lock(hashtext(?))`, lock).Error; err != nil {
			return err
		}
		defer conn.Exec(`SELECT pg_advisory_unlock(hashtext(?))`, lock)
		var seeds []struct {
			Rows    int
			Version int
			From    time.Time
			StepUS  int64
		}
		if conn.Migrator().HasTable("scale_seed") {
			if err := conn.Raw(`SELECT rows, version, "from", step_us FROM scale_seed`).Scan(&seeds).Error; err != nil {
				return err
			}
		}
		if len(seeds) == 1 && seeds[0].Rows == n && seeds[0].Version == seedVersion {
			l.Env = fixture.OpenOn(tb, db, opts)
			l.From, l.Step = seeds[0].From.UTC(), time.Duration(seeds[0].StepUS)*time.Microsecond
			tb.Logf("scaletest: reusing %d seeded rows (from %s)", n, l.From.Format(time.DateOnly))
			return nil
		}
		var schema string
		if err := conn.Raw(`SELECT current_schema()`).Scan(&schema).Error; err != nil {
			return err
		}
		for _, sql := range []string{`DROP SCHEMA ` + schema + ` CASCADE`, `CREATE SCHEMA ` + schema} {
			if err := conn.Exec(sql).Error; err != nil {
				return err
			}
		}
		if layout == dbtest.Partitioned {
			// A partition for every month of the seeded year and for the
			// writes to come, as a log partitioned from its start has.
			from := time.Now().Add(-Span)
			err := audit.Partition(context.Background(), db, &audit.PartitionOptions{MaintainOptions: audit.MaintainOptions{
				Now: func() time.Time { return from }, MonthsAhead: 12 + audit.DefaultMonthsAhead + 1,
			}})
			if err != nil {
				return err
			}
		}
		l.Env = fixture.OpenOn(tb, db, opts)
		l.seed(tb)
		if err := conn.Exec(`CREATE TABLE scale_seed (rows bigint, version int, "from" timestamptz, step_us bigint)`).Error; err != nil {
			return err
		}
		return conn.Exec(`INSERT INTO scale_seed VALUES (?, ?, ?, ?)`, n, seedVersion, l.From, l.Step.Microseconds()).Error
	})
	if err != nil {
		tb.Fatalf("scaletest: %v", err)
	}
	return l
}

// chunk is the number of rows one INSERT seeds, so that progress shows
// and no transaction grows without bound.
const chunk = 1_000_000

// seed inserts l.Rows rows, then vacuums and analyzes the table, as a
// database that has been running for a while would be.
func (l *Log) seed(tb testing.TB) {
	tb.Helper()
	l.From = time.Now().UTC().Add(-Span).Truncate(time.Millisecond)
	l.Step = Span / time.Duration(max(l.Rows, 1))
	start := time.Now()
	for lo := 1; lo <= l.Rows; lo += chunk {
		hi := min(lo+chunk-1, l.Rows)
		if err := l.DB.Exec(seedSQL(lo, hi, l.From, l.Step)).Error; err != nil {
			tb.Fatalf("scaletest: seed rows %d to %d: %v", lo, hi, err)
		}
		if l.Rows > chunk {
			tb.Logf("scaletest: seeded %d of %d rows in %v", hi, l.Rows, time.Since(start).Round(time.Second))
		}
	}
	analyze := `ANALYZE audits`
	if dbtest.Dialect() == dbtest.Postgres {
		analyze = `VACUUM (ANALYZE) audits`
	}
	if err := l.DB.WithContext(context.Background()).Exec(analyze).Error; err != nil {
		tb.Fatalf("scaletest: %s: %v", analyze, err)
	}
	tb.Logf("scaletest: seeded %d rows in %v", l.Rows, time.Since(start).Round(time.Millisecond))
}

// UUID is the key the seed gives record (tag 8000), user (9000) or request
// (a000) number x: a version 4 UUID in form, 36 characters like the real
// ones, so that indexes have their real size.
func UUID(x int, tag string) string {
	return fmt.Sprintf("%08x-0000-4000-%s-%012x", x, tag, x)
}

// Record returns the type and key of seeded record rec (row g belongs to
// record (g-1)/4).
func Record(rec int) (typ, id string) {
	if rec%5 == 0 {
		return runbooks.TypeRunbook, UUID(rec, "8000")
	}
	return runbooks.TypeStep, UUID(rec, "8000")
}

// AccountOf returns the account of seeded record rec.
func AccountOf(rec int) int64 {
	grp := rec / 5
	if grp%2 == 0 {
		return 1
	}
	return int64(2 + grp%(Accounts-1))
}

// At returns created_at of seeded row g.
func (l *Log) At(g int) time.Time {
	return l.From.Add(time.Duration(g-1) * l.Step).Truncate(time.Millisecond)
}

// Step changes of the seeded rows: a create or destroy holds every column,
// as the reference row does; an update two of them.
const (
	fullChanges = `{"name": "Assign A Role", "config": {"role": {"label": "Commander", "value": "2e0f57b8-57a6-4fce-b471-10adfcbe2bf6"}}, ` +
		`"repeats": false, "position": 0, "action_id": "95facc8b-be6f-4d71-90af-f13c53126de6", "automatic": true, "account_id": 1, ` +
		`"repeats_at": null, "runbook_id": "69e62138-e673-4c21-b4fb-caf775308acc", "discarded_at": null, "execution_id": null, ` +
		`"delay_duration": "PT0S", "derived_from_id": null, "repeats_duration": null}`
	updateChanges = `{"name": ["Assign A Role", "Assign the Incident Commander"], "position": [0, 1]}`
)

// seedSQL is the INSERT of rows lo to hi. The expressions are the same in
// both dialects but for the series, UUIDs, JSON and time arithmetic.
func seedSQL(lo, hi int, from time.Time, step time.Duration) string {
	pg := dbtest.Dialect() == dbtest.Postgres
	uuid := func(x, tag string) string {
		if pg {
			return fmt.Sprintf(`lpad(to_hex(%[1]s), 8, '0') || '-0000-4000-%[2]s-' || lpad(to_hex(%[1]s), 12, '0')`, x, tag)
		}
		return fmt.Sprintf(`printf('%%08x-0000-4000-%[2]s-%%012x', %[1]s, %[1]s)`, x, tag)
	}
	json := func(s string) string {
		if pg {
			return `'` + s + `'::jsonb`
		}
		return `'` + s + `'`
	}
	var at, series string
	if pg {
		at = fmt.Sprintf(`date_trunc('milliseconds', '%s'::timestamptz + (g-1) * interval '%d microseconds')`,
			from.Format(time.RFC3339Nano), step.Microseconds())
		series = fmt.Sprintf(`generate_series(%d, %d) AS g`, lo, hi)
	} else {
		at = fmt.Sprintf(`strftime('%%Y-%%m-%%d %%H:%%M:%%f', '%s', '+' || (((g-1) * %d / 1000) / 1000.0) || ' seconds') || '+00:00'`,
			from.Format("2006-01-02 15:04:05.000"), step.Microseconds())
		series = fmt.Sprintf(`(WITH RECURSIVE s(g) AS (SELECT %d UNION ALL SELECT g+1 FROM s WHERE g < %d) SELECT g FROM s)`, lo, hi)
	}
	return fmt.Sprintf(`INSERT INTO audits (account_id, auditable_id, auditable_type, associated_id, associated_type,
		user_id, user_type, action, audited_changes, version, comment, remote_address, request_uuid, created_at, transaction_id)
	SELECT
		CASE WHEN ((g-1)/20) %% 2 = 0 THEN 1 ELSE 2 + ((g-1)/20) %% %[1]d END,
		%[2]s,
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '%[3]s' ELSE '%[4]s' END,
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '' ELSE %[5]s END,
		CASE WHEN ((g-1)/4) %% 5 = 0 THEN '' ELSE '%[3]s' END,
		%[6]s, 'User',
		CASE (g-1) %% 4 WHEN 0 THEN 'create' WHEN 3 THEN 'destroy' ELSE 'update' END,
		CASE WHEN (g-1) %% 4 IN (0, 3) THEN %[7]s ELSE %[8]s END,
		1 + (g-1) %% 4, '', '10.0.0.' || (g %% 250), %[9]s, %[10]s, 0
	FROM %[11]s`,
		Accounts-1, uuid("(g-1)/4", "8000"), runbooks.TypeRunbook, runbooks.TypeStep, uuid("((g-1)/20)*5", "8000"),
		uuid("g % 50", "9000"), json(fullChanges), json(updateChanges), uuid("g", "a000"), at, series)
}
