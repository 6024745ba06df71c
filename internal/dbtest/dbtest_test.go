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
