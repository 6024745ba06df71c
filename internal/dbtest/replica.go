package dbtest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"testing"
	"time"
)

// EnvReplicaURL names a streaming hot standby of TEST_DATABASE_URL's
// server, for the tests of reads through a replica, for example
// "postgres://postgres@127.0.0.1:5433/test?sslmode=disable" (.ci/replica
// sets one up).
const EnvReplicaURL = "TEST_REPLICA_DATABASE_URL"

// Replica is the hot standby of one test's database.
type Replica struct {
	// DSN opens the test's schema on the standby.
	DSN     string
	primary *sql.DB
	standby *sql.DB
}

// OpenReplica returns the standby of EnvReplicaURL, its DSN pointing at the
// schema of primaryDSN (a DSN of OpenWithURL). It skips t when
// EnvReplicaURL is not set or on SQLite: a standby exists only beside
// PostgreSQL, and a run without one cannot test reading from it. A set
// EnvReplicaURL that cannot be reached, or that is not a standby of
// TEST_DATABASE_URL's server, fails t.
//
// Replica tests pause the standby's replay, which every other reader of it
// would see: OpenReplica holds a lock on the primary until t ends, so that
// they run one at a time, across test processes too, and resumes the
// replay when t ends.
func OpenReplica(t testing.TB, primaryDSN string) *Replica {
	t.Helper()
	raw := os.Getenv(EnvReplicaURL)
	if raw == "" || Dialect() != Postgres {
		t.Skipf("dbtest: set %s (and %s) to test reading from a streaming replica; .ci/replica makes one", EnvReplicaURL, EnvURL)
	}
	pu, err := url.Parse(primaryDSN)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	dsn, err := withSearchPath(raw, pu.Query().Get("search_path"))
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	r := &Replica{DSN: dsn}
	if r.primary, err = sql.Open("pgx", primaryDSN); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if r.standby, err = sql.Open("pgx", raw); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		_ = r.standby.Close()
		_ = r.primary.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var primaryID, standbyID int64
	var recovering bool
	if err := r.primary.QueryRowContext(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&primaryID); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	err = r.standby.QueryRowContext(ctx, `SELECT system_identifier, pg_is_in_recovery() FROM pg_control_system()`).
		Scan(&standbyID, &recovering)
	if err != nil {
		t.Fatalf("dbtest: %s is set but the standby is unreachable: %v", EnvReplicaURL, err)
	}
	if !recovering || standbyID != primaryID {
		t.Fatalf("dbtest: %s is not a hot standby of %s's server", EnvReplicaURL, EnvURL)
	}
	r.lock(t)
	t.Cleanup(func() { r.Resume(t) })
	r.Resume(t)
	r.CatchUp(t)
	return r
}

// lock takes the replica tests' lock on the primary until t ends.
func (r *Replica) lock(t testing.TB) {
	t.Helper()
	conn, err := r.primary.Conn(t.Context())
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_advisory_lock(hashtext('gormaudit replica tests'))`); err != nil {
		t.Fatalf("dbtest: lock the replica: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // ends the session, and its lock
}

// CatchUp waits until the standby has replayed every WAL record the
// primary had written when it was called, so that it sees every
// transaction committed before. It waits at most a minute.
func (r *Replica) CatchUp(t testing.TB) {
	t.Helper()
	var lsn string
	if err := r.primary.QueryRowContext(t.Context(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var done bool
		err := r.standby.QueryRowContext(t.Context(), `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done)
		if err != nil {
			t.Fatalf("dbtest: %v", err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbtest: the standby has not replayed the primary's WAL up to %s in a minute", lsn)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
}

// Pause stops the standby's replay: it lags the primary from then on,
// its snapshots showing the primary as it was, until Resume.
func (r *Replica) Pause(t testing.TB) {
	t.Helper()
	if _, err := r.standby.ExecContext(t.Context(), `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatalf("dbtest: pause the standby's replay: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		if err := r.standby.QueryRowContext(t.Context(), `SELECT pg_get_wal_replay_pause_state()`).Scan(&state); err != nil {
			t.Fatalf("dbtest: %v", err)
		}
		if state == "paused" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbtest: the standby's replay is %q a minute after pausing it", state)
		}
		select {
		case <-time.After(time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
}

// Resume restarts the standby's replay.
func (r *Replica) Resume(t testing.TB) {
	t.Helper()
	if _, err := r.standby.ExecContext(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
		t.Errorf("dbtest: resume the standby's replay: %v", err)
	}
}
