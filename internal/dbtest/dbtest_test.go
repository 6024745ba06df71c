package dbtest

import (
	"fmt"
	"strings"
	"testing"
)

// fatalTB records the first Fatalf instead of ending the test.
type fatalTB struct {
	*testing.T
	msg string
}

type fatalled struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalled{})
}

func TestSQLiteByDefault(t *testing.T) {
	t.Setenv(EnvURL, "")
	db := Open(t)
	if got := db.Dialector.Name(); got != "sqlite" {
		t.Fatalf("dialect = %q, want sqlite", got)
	}
	other := Open(t)
	if err := db.Exec(`CREATE TABLE mine (x int)`).Error; err != nil {
		t.Fatal(err)
	}
	if other.Migrator().HasTable("mine") {
		t.Fatal("two tests share a SQLite database")
	}
}

func TestUnreachablePostgresFailsInsteadOfSkipping(t *testing.T) {
	t.Setenv(EnvURL, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	f := &fatalTB{T: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalled); !ok {
					panic(r)
				}
			}
		}()
		Open(f)
	}()
	if !strings.Contains(f.msg, "unreachable") {
		t.Fatalf("Open with an unreachable %s must fail the test, got %q", EnvURL, f.msg)
	}
}

// TestLayoutIsTheOneAskedFor opens a database as the run's environment
// says: with TEST_AUDIT_LAYOUT=partitioned on PostgreSQL the audits table
// exists, partitioned, and holds a row of any year; otherwise no audits
// table exists before the test migrates.
func TestLayoutIsTheOneAskedFor(t *testing.T) {
	db := Open(t)
	has := db.Migrator().HasTable("audits")
	if Layout() == Plain {
		if has {
			t.Fatal("the plain layout leaves the audits table to the test's migration")
		}
		return
	}
	var kind string
	if err := db.Raw(`SELECT relkind::text FROM pg_class WHERE oid = to_regclass('audits')`).Scan(&kind).Error; err != nil {
		t.Fatal(err)
	}
	if kind != "p" {
		t.Fatalf("audits relkind = %q, want p (partitioned)", kind)
	}
	for _, at := range []string{"0001-01-01T00:00:00Z", "2024-05-01T00:00:00Z", "now", "9999-12-31T23:59:59Z"} {
		if err := db.Exec(`INSERT INTO audits (auditable_id, auditable_type, action, audited_changes, version, created_at)
			VALUES ('a', 'T', 'create', '{}', 1, ?::timestamptz)`, at).Error; err != nil {
			t.Fatalf("a row created at %s: %v", at, err)
		}
	}
}

func TestAnUnknownLayoutFails(t *testing.T) {
	if Dialect() != Postgres {
		t.Skip("the layout applies to PostgreSQL")
	}
	t.Setenv(EnvLayout, "sharded")
	f := &fatalTB{T: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalled); !ok {
					panic(r)
				}
			}
		}()
		Open(f)
	}()
	if !strings.Contains(f.msg, "unknown layout") {
		t.Fatalf("Open with %s=sharded must fail the test, got %q", EnvLayout, f.msg)
	}
}
