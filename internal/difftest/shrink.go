package difftest

import (
	"errors"
	"slices"
)

// signature identifies a failure for shrinking: the op that diverged and
// the check it broke.
func signature(f *Failure) string {
	var d *Divergence
	if errors.As(f.Err, &d) {
		return f.Op + "|" + d.Check
	}
	return f.Op + "|" + f.Err.Error()
}

// Shrink looks for a shorter sequence failing like f: it drops chunks of
// units, halving the chunk size (delta debugging), then single statements
// of the remaining transactions, rerunning each candidate on a fresh
// database, at most budget times. It returns the shortest failing
// sequence found and its failure.
func (r *Runner) Shrink(seq Sequence, f *Failure, budget int) (Sequence, *Failure) {
	sig := signature(f)
	try := func(cand Sequence) bool {
		if budget <= 0 || len(cand) == 0 {
			return false
		}
		budget--
		if g := r.Run(cand); g != nil && signature(g) == sig {
			seq, f = cand, g
			return true
		}
		return false
	}
	seq = seq[:f.Unit+1] // nothing after the failing unit matters
	for chunk := max(len(seq)/2, 1); chunk >= 1; chunk /= 2 {
		for i := 0; i < len(seq); {
			cand := slices.Concat(seq[:i], seq[min(i+chunk, len(seq)):])
			if !try(cand) {
				i += chunk
			}
		}
		if chunk == 1 {
			break
		}
	}
	for i := range seq {
		for j := 0; len(seq[i].Calls) > 1 && j < len(seq[i].Calls); {
			cand := slices.Clone(seq)
			cand[i].Calls = slices.Delete(slices.Clone(cand[i].Calls), j, j+1)
			if !try(cand) {
				j++
			}
		}
		if seq[i].Mode != Auto && len(seq[i].Calls) == 1 {
			cand := slices.Clone(seq)
			cand[i].Mode = Auto
			try(cand)
		}
	}
	return seq, f
}
