package audit

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// RetentionPolicy says which audit rows [Prune] removes: those created
// before a global horizon, and for the accounts listed in Accounts, before
// their own. The zero value removes nothing.
type RetentionPolicy struct {
	// Keep keeps the rows created within Keep before now (the plugin's
	// [Config].Now, or time.Now without a plugin) and removes older ones.
	// Defaults to 0: no global horizon, unless Before is set.
	Keep time.Duration
	// Before removes the rows created before it. Set Keep or Before, not
	// both. Defaults to the zero time: no global horizon, unless Keep is
	// set.
	Before time.Time
	// Accounts gives the listed accounts a horizon of their own, longer
	// or shorter than the global one; a zero [Retention] keeps every row
	// of its account. Defaults to nil: every account has the global
	// horizon.
	Accounts map[int64]Retention
}

// Retention is one account's horizon in a [RetentionPolicy]: its rows
// created before Before, or more than Keep before now, are removed. The
// zero value keeps all of them.
type Retention struct {
	Keep   time.Duration
	Before time.Time
}

// cutoff is the moment before which rows are removed, truncated to the
// millisecond like created_at; ok is false when no row is.
func (r Retention) cutoff(now time.Time) (time.Time, bool) {
	switch {
	case !r.Before.IsZero():
		return r.Before.UTC().Truncate(time.Millisecond), true
	case r.Keep > 0:
		return now.Add(-r.Keep).UTC().Truncate(time.Millisecond), true
	}
	return time.Time{}, false
}

func (r Retention) validate(field string) error {
	switch {
	case r.Keep < 0:
		return &ConfigError{Field: field + ".Keep", Reason: "must not be negative"}
	case r.Keep > 0 && !r.Before.IsZero():
		return &ConfigError{Field: field, Reason: "set Keep or Before, not both"}
	}
	return nil
}

// PruneOptions adjusts [Prune]. A nil *PruneOptions means the defaults.
type PruneOptions struct {
	// Archive, if set, first receives every row about to be removed, as
	// gzip-compressed JSON Lines (see [ReadArchive] for the format). Rows
	// are removed only after the whole archive was written, the gzip
	// stream closed and, if Archive has a Sync() error method (an
	// *os.File), synced: any error leaves every row in place. Defaults to
	// nil: no archive.
	Archive io.Writer
	// BatchSize is the width of the id range one delete transaction
	// covers, so at most this many rows per transaction; it also bounds
	// the rows one archive read holds. On SQLite a writer waits for the
	// batch in progress: 1000 keeps that wait short. Defaults to 5000.
	BatchSize int
	// Pause is slept between delete transactions, leaving the database to
	// writers (on SQLite, whose single writer waits for each batch).
	// Defaults to 0.
	Pause time.Duration
}

// DefaultPruneBatchSize is [PruneOptions].BatchSize's default.
const DefaultPruneBatchSize = 5000

func (o *PruneOptions) withDefaults() (PruneOptions, error) {
	var out PruneOptions
	if o != nil {
		out = *o
	}
	switch {
	case out.BatchSize < 0:
		return out, &ConfigError{Field: "PruneOptions.BatchSize", Reason: "must not be negative"}
	case out.Pause < 0:
		return out, &ConfigError{Field: "PruneOptions.Pause", Reason: "must not be negative"}
	case out.BatchSize == 0:
		out.BatchSize = DefaultPruneBatchSize
	}
	return out, nil
}

// PruneReport is what [Prune] did.
type PruneReport struct {
	// Before is the global cutoff: rows of accounts without a horizon of
	// their own created before it were removed. Zero without one.
	Before time.Time `json:"before"`
	// Accounts are the cutoffs of the accounts with a horizon of their
	// own; the zero time for an account whose rows are all kept.
	Accounts map[int64]time.Time `json:"accounts,omitempty"`
	// Removed counts the audit rows removed.
	Removed int64 `json:"removed"`
	// Partitions names the partitions detached and dropped.
	Partitions []string `json:"partitions,omitempty"`
	// Batches counts the delete transactions that removed rows.
	Batches int `json:"batches"`
	// Archived lists, in the archive's order, the chunks written to
	// [PruneOptions].Archive: the archive's manifest lines.
	Archived []ArchiveChunk `json:"archived,omitempty"`
}

// Prune removes the audit rows that policy does not keep. On PostgreSQL's
// partitioned layout (partitions of the audits table on created_at), a
// partition whose every row is removed (its upper bound is at or before
// the global cutoff and it holds no row of an account that keeps it) is
// detached with DETACH PARTITION ... CONCURRENTLY and dropped; the other
// rows are deleted in small transactions, each covering BatchSize ids.
// Writers are never blocked: a detach waits for the transactions that
// may read the partition, not they for it, and a delete locks only the
// old rows it removes (on SQLite, whose single writer waits for each
// batch, keep batches small or pause between them).
//
// With [PruneOptions].Archive, every row is written to the archive first,
// and nothing is removed unless the whole archive was. A row the delete
// would remove that the archive lacks (one inserted meanwhile with an old
// created_at) stops it before that batch commits.
//
// Before removing rows Prune records each account's [Horizon], so that
// [StateAt], [StateAsOf], [Revert] and their relatives refuse a point
// before it with [ErrHistoryGap], and still rebuild later points of
// records whose early rows are gone. Versions continue after a prune. Run
// one Prune at a time, on a db that is not a transaction (a partition is
// detached outside any); on an error the report says what was done.
func Prune(ctx context.Context, db *gorm.DB, policy RetentionPolicy, opts *PruneOptions) (*PruneReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := planPrune(ctx, db, policy, o)
	if err != nil {
		return nil, err
	}
	report := p.report()
	if o.Archive != nil {
		if err := p.archive(o.Archive, report); err != nil {
			return report, err
		}
	}
	for _, part := range p.partitions {
		if err := p.dropPartition(part, report); err != nil {
			return report, err
		}
	}
	if err := p.deleteBatches(report); err != nil {
		return report, err
	}
	return report, nil
}

// prunePlan is what one Prune removes and how.
type prunePlan struct {
	ctx   context.Context
	q     *gorm.DB
	opts  PruneOptions
	scope auditsql.PruneScope
	// cutoffs are the per-account cutoffs; global applies to the others.
	cutoffs map[int64]time.Time
	global  time.Time
	// partitions are dropped whole.
	partitions []auditsql.Partition
	// lo and hi bound the ids of the rows deleted in batches: [lo, hi).
	lo, hi int64
	// archived holds, once the archive is written, what it holds of each
	// partition and batch, by partition name or batch start.
	archived   bool
	partRows   map[string]int64
	batchCount map[int64]int64
}

// planPrune resolves policy at the current moment and decides which
// partitions to drop and which ids to delete in batches.
func planPrune(ctx context.Context, db *gorm.DB, policy RetentionPolicy, o PruneOptions) (*prunePlan, error) {
	if err := (Retention{Keep: policy.Keep, Before: policy.Before}).validate("RetentionPolicy"); err != nil {
		return nil, err
	}
	now := time.Now()
	if pl, ok := FromDB(db); ok {
		now = pl.cfg.Now()
	}
	p := &prunePlan{ctx: ctx, q: db.Session(&gorm.Session{NewDB: true, Context: ctx}), opts: o,
		cutoffs: map[int64]time.Time{}}
	if g, ok := (Retention{Keep: policy.Keep, Before: policy.Before}).cutoff(now); ok {
		p.global, p.scope.Before = g, &g
	}
	groups := map[time.Time][]int64{}
	for _, acct := range slices.Sorted(maps.Keys(policy.Accounts)) {
		r := policy.Accounts[acct]
		if err := r.validate(fmt.Sprintf("RetentionPolicy.Accounts[%d]", acct)); err != nil {
			return nil, err
		}
		c, ok := r.cutoff(now)
		p.cutoffs[acct] = c
		if !ok {
			p.scope.Kept = append(p.scope.Kept, acct)
			continue
		}
		groups[c] = append(groups[c], acct)
	}
	for _, c := range slices.SortedFunc(maps.Keys(groups), func(a, b time.Time) int { return a.Compare(b) }) {
		p.scope.Accounts = append(p.scope.Accounts, auditsql.AccountCutoff{Accounts: groups[c], Before: c})
	}
	if err := p.choosePartitions(); err != nil {
		return nil, err
	}
	if err := p.window(); err != nil {
		return nil, err
	}
	return p, nil
}

// cutoffOf is the cutoff applied to acct's rows.
func (p *prunePlan) cutoffOf(acct int64) time.Time {
	if c, ok := p.cutoffs[acct]; ok {
		return c
	}
	return p.global
}

func (p *prunePlan) report() *PruneReport {
	r := &PruneReport{Before: p.global}
	if len(p.cutoffs) > 0 {
		r.Accounts = maps.Clone(p.cutoffs)
	}
	return r
}

// choosePartitions picks the partitions dropped whole: bounded, ending at
// or before the global cutoff, holding no row an account's own horizon
// keeps. Without a global horizon none is.
func (p *prunePlan) choosePartitions() error {
	if p.scope.Before == nil || !dialect.Of(p.q).DetachesPartitionsConcurrently() {
		return nil
	}
	parts, err := auditsql.Partitions(p.q)
	if err != nil {
		return fmt.Errorf("audit: prune: list partitions: %w", err)
	}
	if slices.ContainsFunc(parts, func(part auditsql.Partition) bool { return part.Default }) {
		// DETACH ... CONCURRENTLY is refused beside a DEFAULT partition:
		// every row is deleted in batches.
		return nil
	}
	for _, part := range parts {
		if !part.Bounded || part.To.After(p.global) {
			continue
		}
		var longer []auditsql.AccountCutoff
		for _, g := range p.scope.Accounts {
			if g.Before.Before(part.To) {
				longer = append(longer, g)
			}
		}
		keeps, err := auditsql.PartitionKeeps(p.q, part, longer, p.scope.Kept)
		if err != nil {
			return fmt.Errorf("audit: prune: check partition %s: %w", part.Name, err)
		}
		if !keeps {
			p.partitions = append(p.partitions, part)
			p.scope.Skip = append(p.scope.Skip, auditsql.Range{From: part.From, To: part.To})
		}
	}
	return nil
}

// window finds the ids of the rows deleted in batches: from the least id
// to the first row created at or after the latest cutoff, found by
// bisection on ids (ids grow with created_at). A row created before its
// cutoff but inserted after that row is left for a later Prune.
func (p *prunePlan) window() error {
	latest, some := p.global, p.scope.Before != nil
	for _, g := range p.scope.Accounts {
		if !some || g.Before.After(latest) {
			latest, some = g.Before, true
		}
	}
	if !some {
		return nil
	}
	lo, hi, ok, err := auditsql.IDRange(p.q, p.scope.Skip)
	if err != nil || !ok {
		return readErr("prune: read the id range", err)
	}
	// The least x such that the first row at or after x is new enough.
	a, b := lo, hi+1
	for a < b {
		mid := a + (b-a)/2
		_, at, ok, err := auditsql.FirstFrom(p.q, mid)
		if err != nil {
			return readErr("prune: find the horizon's id", err)
		}
		if !ok || !at.Before(latest) {
			b = mid
		} else {
			a = mid + 1
		}
	}
	p.lo, p.hi = lo, a
	return nil
}

// readErr wraps err, if any, as an audit error about what.
func readErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("audit: %s: %w", what, err)
}

// dropPartition records the horizons of the accounts in part, detaches
// it without blocking writers, checks that it holds what was archived, and
// drops it.
func (p *prunePlan) dropPartition(part auditsql.Partition, report *PruneReport) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("audit: prune: %s partition %s: %w", what, part.Name, err)
	}
	count, err := p.recordPartition(part)
	if err != nil {
		return fail("read", err)
	}
	if want := p.partRows[part.Name]; p.archived && count != want {
		return fail("keep", fmt.Errorf("it holds %d rows, the archive %d: prune again", count, want))
	}
	if err := auditsql.DetachPartition(p.q, part); err != nil {
		return fail("detach", err)
	}
	// Detached, the table gets no more rows: what it holds now is final.
	final, err := p.recordPartition(part)
	if err != nil {
		return fail("read detached", err)
	}
	if p.archived && final != count {
		return fail("keep detached", fmt.Errorf("it holds %d rows, the archive %d: archive and drop it by hand", final, count))
	}
	if err := auditsql.DropDetached(p.q, part); err != nil {
		return fail("drop detached", err)
	}
	report.Removed += final
	report.Partitions = append(report.Partitions, part.Name)
	return nil
}

// recordPartition records the horizons of the accounts of the rows in
// part and returns how many rows it holds.
func (p *prunePlan) recordPartition(part auditsql.Partition) (int64, error) {
	accounts, err := auditsql.PartitionAccounts(p.q, part)
	if err != nil {
		return 0, err
	}
	removed := map[int64]int64{}
	var count int64
	for _, a := range accounts {
		removed[a.AccountID], count = a.MaxID, count+a.Count
	}
	return count, recordHorizons(p.q, removed, p.cutoffOf)
}

// deleteBatches deletes the rows of the batch window, one id range per
// transaction, recording the horizons of their accounts in the same
// transaction.
func (p *prunePlan) deleteBatches(report *PruneReport) error {
	step := int64(p.opts.BatchSize)
	for from := p.lo; from < p.hi; from += step {
		to := min(from+step, p.hi)
		want, archived := p.batchCount[from]
		if p.archived && !archived {
			continue // the archive found no row here
		}
		var n int
		err := p.q.Transaction(func(tx *gorm.DB) error {
			rows, err := auditsql.DeletePruned(tx, &p.scope, from, to)
			if err != nil {
				return err
			}
			if p.archived && int64(len(rows)) != want {
				return fmt.Errorf("ids %d to %d hold %d rows to remove, the archive %d: prune again", from, to-1, len(rows), want)
			}
			removed := map[int64]int64{}
			for _, r := range rows {
				removed[r.AccountID] = max(removed[r.AccountID], r.ID)
			}
			n = len(rows)
			return recordHorizons(tx, removed, p.cutoffOf)
		})
		if err != nil {
			return fmt.Errorf("audit: prune: delete ids %d to %d: %w", from, to-1, err)
		}
		if n > 0 {
			report.Removed += int64(n)
			report.Batches++
		}
		if p.opts.Pause > 0 && to < p.hi {
			if err := sleep(p.ctx, p.opts.Pause); err != nil {
				return err
			}
		}
	}
	return nil
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("audit: prune: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
