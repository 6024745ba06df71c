package difftest

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// fixedSeeds are the seeds CI runs; DIFFTEST_SEED runs one other seed.
func fixedSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("DIFFTEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("DIFFTEST_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	return []uint64{1, 2, 3, 4}
}

const unitsPerRun = 40

// check runs seq; on a divergence it shrinks it and fails t with the seed
// and the shortest sequence found.
func check(t *testing.T, r *Runner, seed uint64, seq Sequence) {
	t.Helper()
	f := r.Run(seq)
	if f == nil {
		return
	}
	short, sf := r.Shrink(seq, f, 60)
	t.Fatalf("divergence with seed %d (gated %t, %s); rerun with DIFFTEST_SEED=%d\n"+
		"shortest sequence found (%d of %d units):\n%s\n%v",
		seed, r.Gated, dbtest.Dialect(), seed, len(short), len(seq), short, sf)
}

func TestDifferential(t *testing.T) {
	for _, seed := range fixedSeeds(t) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			gated := seed%2 == 1
			cfg := Config{Postgres: dbtest.Dialect() == dbtest.Postgres, Gated: gated}
			r := &Runner{T: t, Seed: seed, Gated: gated, Readers: true, Stats: Stats{}}
			check(t, r, seed, Generate(seed, unitsPerRun, cfg))
			t.Logf("outcomes by op: %v", r.Stats)
		})
	}
}

// TestDifferentialForms runs each op on its own (with the creates it
// needs), so that a divergence names its write form.
func TestDifferentialForms(t *testing.T) {
	pg := dbtest.Dialect() == dbtest.Postgres
	for _, o := range ops {
		if o.only == "postgres" && !pg || o.only == "sqlite" && pg {
			continue
		}
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Postgres: pg, Gated: o.gated, Only: []string{o.name}}
			var f *Failure
			var seq Sequence
			r := &Runner{T: t, Seed: 7, Gated: o.gated, Stats: Stats{}}
			for seed := uint64(1); seed <= 3 && f == nil; seed++ {
				seq = Generate(seed, 25, cfg)
				f = r.Run(seq)
			}
			if f != nil {
				short, sf := r.Shrink(seq, f, 30)
				t.Fatalf("diverges:\n%s\n%v", short, sf)
			}
			t.Logf("outcomes: %v", r.Stats)
		})
	}
}
