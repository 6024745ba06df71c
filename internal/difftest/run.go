package difftest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
)

// Mode is how a unit's statements run.
type Mode int

// The caller transaction forms a unit can take.
const (
	// Auto runs one statement in gorm's own transaction.
	Auto Mode = iota
	// Commit runs statements in db.Transaction; an error rolls it back.
	Commit
	// Rollback runs them and rolls back on purpose.
	Rollback
	// Swallow ignores each statement's error and commits.
	Swallow
	// SwallowFailedAudit is Swallow with a trigger refusing every audit
	// row the statements write (finding 7): nothing may be committed.
	SwallowFailedAudit
	// Savepoint runs them after a SAVEPOINT, rolls back to it, commits.
	Savepoint
)

var modeNames = []string{"auto", "commit", "rollback", "swallow errors", "swallow a failed audit", "savepoint rolled back"}

func (m Mode) String() string { return modeNames[m] }

// Call is one statement of a sequence: an op and the seed of its values.
type Call struct {
	Op   string
	Seed uint64
}

// Unit is one top-level step: a statement on its own, or a caller
// transaction of one to three.
type Unit struct {
	Mode  Mode
	Calls []Call
}

// Sequence is what the generator draws and the shrinker shortens.
type Sequence []Unit

// Config selects what a generator draws.
type Config struct {
	Postgres bool
	Gated    bool
	// Skip lists op names not to draw (the known-broken forms), and
	// "mode:" followed by the name of a Mode not to use.
	Skip map[string]bool
	// Only, when not empty, restricts the draw to these ops plus the
	// plain creates they need to have records to work on.
	Only []string
}

func (cfg Config) usable() []op {
	var out []op
	for _, o := range ops {
		switch {
		case cfg.Skip[o.name],
			o.only == "postgres" && !cfg.Postgres,
			o.only == "sqlite" && cfg.Postgres,
			o.gated && !cfg.Gated,
			len(cfg.Only) > 0 && !slices.Contains(cfg.Only, o.name) && !slices.Contains(seedOps, o.name):
			continue
		}
		out = append(out, o)
	}
	return out
}

// seedOps give a restricted run records to work on.
var seedOps = []string{"step.create", "sample.create", "gauge.create"}

// Generate draws n units from seed.
func Generate(seed uint64, n int, cfg Config) Sequence {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	usable := cfg.usable()
	total := 0
	for _, o := range usable {
		total += o.weight
	}
	pick := func() op {
		w := rng.IntN(total)
		for _, o := range usable {
			if w < o.weight {
				return o
			}
			w -= o.weight
		}
		panic("unreachable")
	}
	seq := make(Sequence, 0, n)
	for range n {
		o := pick()
		if o.gated {
			seq = append(seq, Unit{Mode: Rollback, Calls: []Call{{o.name, rng.Uint64()}}})
			continue
		}
		u := Unit{Mode: []Mode{Auto, Auto, Auto, Auto, Commit, Commit, Rollback, Swallow, SwallowFailedAudit, Savepoint}[rng.IntN(10)]}
		if cfg.Skip["mode:"+u.Mode.String()] {
			u.Mode = Commit
		}
		calls := 1
		if u.Mode != Auto {
			calls += rng.IntN(3)
		}
		u.Calls = append(u.Calls, Call{o.name, rng.Uint64()})
		for len(u.Calls) < calls {
			if next := pick(); !next.gated {
				u.Calls = append(u.Calls, Call{next.name, rng.Uint64()})
			}
		}
		seq = append(seq, u)
	}
	return seq
}

func (s Sequence) String() string {
	var b strings.Builder
	for i, u := range s {
		fmt.Fprintf(&b, "  %d. %s:", i+1, u.Mode)
		for _, c := range u.Calls {
			fmt.Fprintf(&b, " %s#%x", c.Op, c.Seed)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Failure is a divergence found by running a sequence.
type Failure struct {
	Unit int    // index of the unit after which it was found
	Op   string // the op of the statement that diverged, "" when found after the unit
	Err  error
	// Trace describes every statement run, with its values and outcome.
	Trace []string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("unit %d (%s): %v\nstatements run:\n  %s", f.Unit+1, f.Op, f.Err, strings.Join(f.Trace, "\n  "))
}

// Stats counts statement outcomes by op.
type Stats map[string]map[string]int

func (s Stats) add(op, outcome string) {
	if s[op] == nil {
		s[op] = map[string]int{}
	}
	s[op][outcome]++
}

// Runner runs sequences on a fresh Env each.
type Runner struct {
	T     testing.TB
	Seed  uint64 // chooses the slot keys
	Gated bool
	// Readers adds the listing and notifier checks at the end of a run.
	Readers bool
	Stats   Stats
}

// Run runs seq on a fresh database and returns the first divergence.
func (r *Runner) Run(seq Sequence) *Failure {
	e := Open(r.T, r.Seed, r.Gated)
	x := &exec{e: e, stats: r.Stats, checked: map[recKey]int{}, shadow: newShadowLog(e.recorded)}
	for i, u := range seq {
		if f := x.unit(u); f != nil {
			f.Unit, f.Trace = i, x.trace
			return f
		}
	}
	if r.Readers {
		if err := checkReaders(r.T, e); err != nil {
			return &Failure{Unit: len(seq) - 1, Err: err, Trace: x.trace}
		}
	}
	return nil
}

type exec struct {
	e       *Env
	stats   Stats
	trace   []string
	checked map[recKey]int // versions already compared with StateAt
	shadow  *shadowLog     // the committed changes read so far
	lastErr error          // the error of the last statement
}

var (
	errRollback = errors.New("difftest: deliberate rollback")
	errStop     = errors.New("difftest: divergence")
)

// unit runs one unit and checks each statement, the outcome of its
// transaction and then the whole log.
func (x *exec) unit(u Unit) *Failure {
	base := x.e.w()
	if u.Mode == SwallowFailedAudit {
		base = base.WithContext(audit.WithComment(x.e.Ctx, refuseComment))
	}
	pre, err := read(base)
	if err != nil {
		return &Failure{Err: fmt.Errorf("difftest: read: %w", err)}
	}
	if u.Mode == Auto {
		after, f := x.statement(base, pre, u.Calls[0])
		if f != nil {
			return f
		}
		return x.settled(pre, after, false)
	}
	var fail *Failure
	last, aborted := pre, false
	txErr := base.Transaction(func(tx *gorm.DB) error {
		if u.Mode == Savepoint {
			if err := tx.SavePoint("difftest").Error; err != nil {
				return err
			}
		}
		for _, c := range u.Calls {
			after, f := x.statement(tx, last, c)
			if f != nil && !errors.Is(f.Err, errAborted) {
				fail = f
				return errStop
			}
			stmtErr := x.lastErr
			if f != nil { // PostgreSQL aborted the transaction
				aborted = true
			} else {
				last = after
			}
			if stmtErr != nil && (u.Mode == Commit || u.Mode == Rollback) {
				return stmtErr
			}
			if stmtErr != nil && u.Mode == Savepoint {
				break
			}
		}
		if u.Mode == Savepoint {
			if err := tx.RollbackTo("difftest").Error; err != nil {
				return err
			}
			aborted = false
			back, err := read(tx)
			if err != nil {
				return err
			}
			if err := sameState(pre, back); err != nil {
				fail = &Failure{Op: "ROLLBACK TO SAVEPOINT", Err: err}
				return errStop
			}
			last = back
		}
		if u.Mode == Rollback {
			return errRollback
		}
		return nil
	})
	if fail != nil {
		return fail
	}
	x.trace = append(x.trace, fmt.Sprintf("   → %s: %v", u.Mode, errText(txErr)))
	committed := txErr == nil && !aborted
	if !committed {
		last = pre
	}
	return x.settled(pre, last, !committed)
}

var errAborted = errors.New("difftest: the transaction is aborted")

func errText(err error) string {
	if err == nil {
		return "committed"
	}
	return clip(err.Error(), 160)
}

// statement runs one call through q and checks it against before.
func (x *exec) statement(q *gorm.DB, before *snapshot, c Call) (*snapshot, *Failure) {
	o := opNamed(c.Op)
	cl := &call{e: x.e, db: q, rng: rand.New(rand.NewPCG(c.Seed, 1))}
	err := o.run(cl)
	x.lastErr = err
	x.stats.add(o.name, outcome(err))
	x.trace = append(x.trace, fmt.Sprintf("%s: %s → %s", o.name, strings.Join(cl.desc, "; "), errText(err)))
	after, rerr := read(q)
	if rerr != nil {
		if err != nil && x.e.PG {
			return nil, &Failure{Op: o.name, Err: errAborted}
		}
		return nil, &Failure{Op: o.name, Err: fmt.Errorf("difftest: read after the statement: %w", rerr)}
	}
	if d := checkStatement(before, after, err, x.e.recorded); d != nil {
		return nil, &Failure{Op: o.name, Err: d}
	}
	return after, nil
}

// settled checks the committed database after a unit: it must be what the
// unit's transaction saw last (or what it started from, when it rolled
// back), its whole log must replay, and each record's audit rows must be
// its committed changes as the shadow log tells them.
func (x *exec) settled(pre, want *snapshot, rolledBack bool) *Failure {
	post, err := read(x.e.w())
	if err != nil {
		return &Failure{Err: fmt.Errorf("difftest: read: %w", err)}
	}
	if err := sameState(want, post); err != nil {
		what := "the committed database differs from what the transaction wrote"
		if rolledBack {
			what = "a rolled-back unit left changes"
		}
		return &Failure{Op: "COMMIT", Err: diverge(what, "%v", err)}
	}
	replayed, err := checkLog(post, x.e.recorded)
	if err != nil {
		return &Failure{Err: err}
	}
	if err := x.shadow.extend(x.e.w()); err != nil {
		return &Failure{Err: err}
	}
	if err := x.shadow.check(post); err != nil {
		return &Failure{Err: err}
	}
	if err := checkStateAt(x.e.Ctx, x.e.DB, replayed, x.checked); err != nil {
		return &Failure{Err: err}
	}
	return nil
}

func sameState(want, got *snapshot) error {
	if d := cmp.Diff(want.rows, got.rows); d != "" {
		return diverge("rows differ", "(-want +got):\n%s", d)
	}
	if d := cmp.Diff(want.audits, got.audits); d != "" {
		return diverge("audit rows differ", "(-want +got):\n%s", d)
	}
	return nil
}

// outcome classifies a statement's error for the statistics.
func outcome(err error) string {
	var we *audit.WriteError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, audit.ErrUnsupportedWrite):
		return "refused: ErrUnsupportedWrite"
	case errors.As(err, &we):
		return "refused: *WriteError"
	case strings.HasPrefix(err.Error(), "audit: "):
		return "refused: other audit error"
	}
	return "refused: database error"
}
