package audit_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// envConvertRows sets how many audit rows BenchmarkPartitionConvert
// converts; 20,000 by default, so that CI's single iteration stays quick.
const envConvertRows = "GORMAUDIT_BENCH_CONVERT_ROWS"

// BenchmarkPartitionConvert measures how long audit.Partition holds the
// audits table locked while it converts a plain table of rows spread over
// 24 months, side by side with copying the same table once (CREATE TABLE
// AS), in one run. It reports the conversion's rows per second and its
// time as a multiple of the copy's.
//
//	TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  GORMAUDIT_BENCH_CONVERT_ROWS=1000000 go test -run '^$' -bench PartitionConvert -benchtime 1x ./audit/
func BenchmarkPartitionConvert(b *testing.B) {
	if dbtest.Dialect() != dbtest.Postgres {
		b.Skip("SQLite has no partitioned tables")
	}
	rows := 20_000
	if s := os.Getenv(envConvertRows); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err, envConvertRows)
		rows = n
	}
	ctx := context.Background()
	db := dbtest.Open(b)
	var convert, copyTime time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		require.NoError(b, db.Exec(`DROP TABLE IF EXISTS audits CASCADE`).Error)
		require.NoError(b, audit.Migrate(ctx, db))
		// Rows as the plugin writes them: five versions of each record,
		// spread evenly over 24 months ending now.
		require.NoError(b, db.Exec(`INSERT INTO audits (account_id, auditable_id, auditable_type, user_id, user_type,
				action, audited_changes, version, created_at, transaction_id)
			SELECT g % 100, 's' || (g / 5), 'Runbooks::Step', 'u' || (g % 37), 'User', 'update',
				jsonb_build_object('name', jsonb_build_array('step ' || g, 'step ' || (g + 1)), 'position', jsonb_build_array(g, g + 1)),
				g % 5 + 1, now() - (interval '730 days') * (g::float8 / ?), g
			FROM generate_series(1, ?) AS g`, rows, rows).Error)
		require.NoError(b, db.Exec(`ANALYZE audits`).Error)

		t0 := time.Now()
		require.NoError(b, db.Exec(`CREATE TABLE audits_copy AS SELECT * FROM audits`).Error)
		copyTime += time.Since(t0)
		require.NoError(b, db.Exec(`DROP TABLE audits_copy`).Error)

		b.StartTimer()
		t1 := time.Now()
		require.NoError(b, audit.Partition(ctx, db, nil))
		convert += time.Since(t1)
	}
	b.StopTimer()
	var n int64
	require.NoError(b, db.Raw(`SELECT count(*) FROM audits`).Scan(&n).Error)
	require.EqualValues(b, rows, n)
	b.ReportMetric(float64(rows)*float64(b.N)/convert.Seconds(), "rows/s")
	b.ReportMetric(float64(convert.Milliseconds())/float64(b.N), "ms/convert")
	b.ReportMetric(float64(convert)/float64(copyTime), "x-copy")
	b.ReportMetric(0, "ns/op")
}
