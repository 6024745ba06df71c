package difftest

import (
	"testing"

	"github.com/gormaudit/gormaudit/internal/dbtest"
)

// FuzzDifferential draws a sequence from the fuzzer's seed and length and
// runs it with every check; a divergence is shrunk and reported with the
// seed.
func FuzzDifferential(f *testing.F) {
	f.Add(uint64(1), uint8(12), false)
	f.Add(uint64(42), uint8(20), true)
	f.Fuzz(func(t *testing.T, seed uint64, n uint8, gated bool) {
		cfg := Config{Postgres: dbtest.Dialect() == dbtest.Postgres, Gated: gated}
		r := &Runner{T: t, Seed: seed, Gated: gated, Stats: Stats{}}
		check(t, r, seed, Generate(seed, 1+int(n%24), cfg))
	})
}
