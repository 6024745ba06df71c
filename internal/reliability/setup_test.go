// Package reliability is the cross-cutting suite behind the README's
// "Reliability" table: concurrent writers, faults, fuzzed history and
// hostile HTTP input. Every test prints one line starting with RELIABILITY,
// a row of that table; TestMain prints its header. Regenerate the table
// with the command in the README (both databases, -race).
package reliability

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/dbtest"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

func TestMain(m *testing.M) {
	fmt.Println("RELIABILITY | scenario | database | size | checked | outcome | time |")
	fmt.Println("RELIABILITY |---|---|---|---|---|---|")
	os.Exit(m.Run())
}

// env is one test's audited database.
type env struct {
	db  *gorm.DB        // audited
	dsn string          // a second pool to the same database
	ctx context.Context // carries fixture.Actor
}

// setup opens the shared fixture with the token tables too.
func setup(t testing.TB) *env {
	t.Helper()
	e := fixture.Open(t, &fixture.Options{Migrations: []fixture.Migration{httpapi.Migrate}})
	return &env{db: e.DB, dsn: e.DSN, ctx: e.Ctx}
}

// w is the audited database bound to the fixture's actor.
func (e *env) w() *gorm.DB { return e.db.WithContext(e.ctx) }

// row is one row of the Reliability table. A test fills in Size and Checked
// as it learns them; the row is printed when the test ends, with the
// outcome the test had.
type row struct {
	mu       sync.Mutex
	Scenario string
	Size     string
	Checked  string
	start    time.Time
}

// report registers the test's table row. While fuzzing (-fuzz) nothing is
// printed: the inputs run in worker processes this one cannot count.
func report(t testing.TB, scenario string) *row {
	t.Helper()
	r := &row{Scenario: scenario, start: time.Now()}
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return r
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		outcome := "pass"
		switch {
		case t.Failed():
			outcome = "FAIL"
		case t.Skipped():
			outcome = "skipped"
		}
		cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
		fmt.Printf("RELIABILITY | %s | %s | %s | %s | %s | %.1fs |\n", cell(r.Scenario), dbtest.Dialect(),
			cell(r.Size), cell(r.Checked), outcome, time.Since(r.start).Seconds())
	})
	return r
}

func (r *row) set(size, checked string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Size, r.Checked = size, checked
}
