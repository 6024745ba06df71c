package audit_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// day0 is the first day of the retention tests' histories.
var day0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// day returns midnight of day d of the retention tests' histories.
func day(d int) time.Time { return day0.AddDate(0, 0, d) }

// Set moves the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// seedDays gives each account one runbook created at noon of day 0 and
// renamed at noon of each following day up to day days-1, the accounts
// interleaved, so that an id range holds rows of every account. then, if
// set, runs after each day's writes.
func seedDays(t *testing.T, b *bundle, clk *clock, accounts []int64, days int,
	then ...func(d int, rbs map[int64]*runbooks.Runbook)) map[int64]*runbooks.Runbook {
	t.Helper()
	rbs := map[int64]*runbooks.Runbook{}
	for d := range days {
		for i, acct := range accounts {
			clk.Set(day(d).Add(12*time.Hour + time.Duration(i)*time.Minute))
			if d == 0 {
				rbs[acct] = &runbooks.Runbook{AccountID: acct, Name: "day 0"}
				require.NoError(t, b.w().Create(rbs[acct]).Error)
				continue
			}
			require.NoError(t, b.w().Model(rbs[acct]).Update("name", fmt.Sprintf("day %d", d)).Error)
		}
		for _, f := range then {
			f(d, rbs)
		}
	}
	return rbs
}

// prunedBy splits rows into those cutoff (account → cutoff; absent: kept)
// removes and the ids of those it keeps.
func prunedBy(rows []audit.Audit, cutoff map[int64]time.Time) (removed []audit.Audit, kept []int64) {
	for _, a := range rows {
		if c, ok := cutoff[a.AccountID]; ok && a.CreatedAt.Before(c) {
			removed = append(removed, a)
		} else {
			kept = append(kept, a.ID)
		}
	}
	return removed, kept
}

func auditIDs(rows []audit.Audit) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

// horizonsOf returns the horizons the removed rows should leave: per
// account, its cutoff and its greatest removed id.
func horizonsOf(removed []audit.Audit, cutoff map[int64]time.Time) []audit.Horizon {
	through := map[int64]int64{}
	for _, a := range removed {
		through[a.AccountID] = max(through[a.AccountID], a.ID)
	}
	var out []audit.Horizon
	for acct, id := range through {
		out = append(out, audit.Horizon{AccountID: acct, Before: cutoff[acct], ThroughID: id})
	}
	slices.SortFunc(out, func(a, b audit.Horizon) int { return int(a.AccountID - b.AccountID) })
	return out
}

func (b *bundle) horizons(t *testing.T) []audit.Horizon {
	t.Helper()
	var hs []audit.Horizon
	require.NoError(t, b.db.Order("account_id").Find(&hs).Error)
	return hs
}

func TestPruneGlobalAndPerAccountHorizons(t *testing.T) {
	t.Parallel()
	clk := &clock{now: day0}
	b := setup(t, audit.Config{Now: clk.Now})
	seedDays(t, b, clk, []int64{1, 2, 3, 4}, 10)
	before := b.audits(t)

	// Account 1 has the global horizon, 2 a shorter one, 3 a longer one,
	// and 4 keeps everything.
	policy := audit.RetentionPolicy{Before: day(5), Accounts: map[int64]audit.Retention{
		2: {Before: day(8)}, 3: {Before: day(2)}, 4: {}}}
	report, err := audit.Prune(b.ctx, b.db, policy, &audit.PruneOptions{BatchSize: 3})
	require.NoError(t, err)

	cutoff := map[int64]time.Time{1: day(5), 2: day(8), 3: day(2)}
	removed, kept := prunedBy(before, cutoff)
	require.Len(t, removed, 5+8+2)
	if diff := cmp.Diff(kept, auditIDs(b.audits(t))); diff != "" {
		t.Fatalf("rows left (-want +got):\n%s", diff)
	}
	want := &audit.PruneReport{Before: day(5), Accounts: map[int64]time.Time{2: day(8), 3: day(2), 4: {}},
		Removed: int64(len(removed))}
	if diff := cmp.Diff(want, report, cmpopts.IgnoreFields(audit.PruneReport{}, "Batches")); diff != "" {
		t.Fatalf("report (-want +got):\n%s", diff)
	}
	batches := map[int64]bool{}
	for _, a := range removed {
		batches[(a.ID-before[0].ID)/3] = true
	}
	require.Equal(t, len(batches), report.Batches, "one transaction per range of 3 ids holding rows to remove")
	if diff := cmp.Diff(horizonsOf(removed, cutoff), b.horizons(t)); diff != "" {
		t.Fatalf("horizons (-want +got):\n%s", diff)
	}

	// Again: nothing more to remove.
	again, err := audit.Prune(b.ctx, b.db, policy, nil)
	require.NoError(t, err)
	require.Zero(t, again.Removed)

	// Keep is measured from the plugin's clock: day 9 at noon less 3 days.
	clk.Set(day(9).Add(12 * time.Hour))
	report, err = audit.Prune(b.ctx, b.db, audit.RetentionPolicy{Keep: 3 * 24 * time.Hour,
		Accounts: map[int64]audit.Retention{2: {Before: day(8)}, 3: {}, 4: {}}}, nil)
	require.NoError(t, err)
	require.Equal(t, day(6).Add(12*time.Hour), report.Before)
	cutoff[1] = day(6).Add(12 * time.Hour)
	removed, kept = prunedBy(before, cutoff)
	if diff := cmp.Diff(kept, auditIDs(b.audits(t))); diff != "" {
		t.Fatalf("rows left after Keep (-want +got):\n%s", diff)
	}
	require.Equal(t, int64(1), report.Removed, "account 1's row of day 5; day 6's, at the cutoff, stays")
	if diff := cmp.Diff(horizonsOf(removed, cutoff), b.horizons(t)); diff != "" {
		t.Fatalf("horizons after Keep (-want +got):\n%s", diff)
	}
}

func TestPruneRefusesAnInvalidPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	for _, c := range []struct {
		policy audit.RetentionPolicy
		opts   *audit.PruneOptions
		field  string
	}{
		{audit.RetentionPolicy{Keep: -time.Hour}, nil, "RetentionPolicy.Keep"},
		{audit.RetentionPolicy{Keep: time.Hour, Before: day0}, nil, "RetentionPolicy"},
		{audit.RetentionPolicy{Accounts: map[int64]audit.Retention{7: {Keep: -1}}}, nil, "RetentionPolicy.Accounts[7].Keep"},
		{audit.RetentionPolicy{}, &audit.PruneOptions{BatchSize: -1}, "PruneOptions.BatchSize"},
		{audit.RetentionPolicy{}, &audit.PruneOptions{Pause: -time.Second}, "PruneOptions.Pause"},
	} {
		_, err := audit.Prune(b.ctx, b.db, c.policy, c.opts)
		var ce *audit.ConfigError
		require.ErrorAs(t, err, &ce, c.field)
		require.Equal(t, c.field, ce.Field)
	}
	report, err := audit.Prune(b.ctx, b.db, audit.RetentionPolicy{}, nil)
	require.NoError(t, err)
	require.Equal(t, &audit.PruneReport{}, report, "the zero policy removes nothing")
}

// archiveLines decodes an archive by hand: its rows' ids and its manifest
// lines, each with the ids of the rows before it.
func archiveLines(t *testing.T, archive []byte) (manifests []map[string]any, rowsBefore [][]int64) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	require.NoError(t, err)
	sc := bufio.NewScanner(gz)
	sc.Buffer(nil, 1<<20)
	var ids []int64
	for sc.Scan() {
		var line map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if m, ok := line["manifest"]; ok {
			require.Len(t, line, 1, "a manifest line holds the manifest only")
			var v map[string]any
			require.NoError(t, json.Unmarshal(m, &v))
			manifests, rowsBefore, ids = append(manifests, v), append(rowsBefore, ids), nil
			continue
		}
		var id int64
		require.NoError(t, json.Unmarshal(line["id"], &id))
		ids = append(ids, id)
	}
	require.NoError(t, sc.Err())
	require.Empty(t, ids, "rows after the last manifest line")
	return manifests, rowsBefore
}

func TestPruneArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	clk := &clock{now: day0}
	b := setup(t, audit.Config{Now: clk.Now})
	seedDays(t, b, clk, []int64{1, 2}, 8, func(d int, rbs map[int64]*runbooks.Runbook) {
		if d == 1 { // a step, so that the archive holds associated rows too
			clk.Set(day(1).Add(13 * time.Hour))
			require.NoError(t, b.w().Create(&runbooks.Step{AccountID: 1, RunbookID: rbs[1].ID, Name: "Page"}).Error)
		}
	})
	before := b.audits(t)

	var archive bytes.Buffer
	policy := audit.RetentionPolicy{Before: day(6), Accounts: map[int64]audit.Retention{2: {Before: day(3)}}}
	report, err := audit.Prune(b.ctx, b.db, policy, &audit.PruneOptions{Archive: &archive, BatchSize: 4})
	require.NoError(t, err)
	removed, kept := prunedBy(before, map[int64]time.Time{1: day(6), 2: day(3)})
	require.Equal(t, int64(len(removed)), report.Removed)
	require.Equal(t, kept, auditIDs(b.audits(t)))

	// The archive holds exactly the removed rows, as they were stored.
	var got []audit.Audit
	chunks, err := audit.ReadArchive(bytes.NewReader(archive.Bytes()), func(a audit.Audit) error {
		got = append(got, a)
		return nil
	})
	require.NoError(t, err)
	if diff := cmp.Diff(removed, got, cmpopts.IgnoreFields(audit.Audit{}, "TransactionID"), compactChanges(t)); diff != "" {
		t.Fatalf("archived rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(report.Archived, chunks); diff != "" {
		t.Fatalf("manifest (-report +archive):\n%s", diff)
	}

	// Decoded by hand, each manifest line counts the rows before it.
	manifests, rowsBefore := archiveLines(t, archive.Bytes())
	require.Len(t, manifests, len(chunks))
	total := 0
	for i, m := range manifests {
		ids := rowsBefore[i]
		total += len(ids)
		require.Equal(t, float64(len(ids)), m["count"], "chunk %d", i)
		require.Equal(t, float64(ids[0]), m["first_id"], "chunk %d", i)
		require.Equal(t, float64(ids[len(ids)-1]), m["last_id"], "chunk %d", i)
		require.Less(t, m["from_id"].(float64), m["to_id"].(float64))
		require.LessOrEqual(t, m["to_id"].(float64)-m["from_id"].(float64), float64(4), "one batch of 4 ids")
	}
	require.Equal(t, len(removed), total)
}

func TestReadArchiveFindsAMissingRow(t *testing.T) {
	t.Parallel()
	clk := &clock{now: day0}
	b := setup(t, audit.Config{Now: clk.Now})
	seedDays(t, b, clk, []int64{1}, 6)
	var archive bytes.Buffer
	_, err := audit.Prune(b.ctx, b.db, audit.RetentionPolicy{Before: day(5)}, &audit.PruneOptions{Archive: &archive})
	require.NoError(t, err)

	lines := gunzipLines(t, archive.Bytes())
	require.Len(t, lines, 5+1, "5 rows and one manifest line")
	for _, c := range []struct {
		name  string
		lines [][]byte
	}{
		{"a row missing", slices.Delete(slices.Clone(lines), 2, 3)},
		{"rows out of order", append([][]byte{lines[1], lines[0]}, lines[2:]...)},
		{"cut before the manifest", lines[:5]},
		{"a row outside its batch", append(slices.Clone(lines[:5]), narrowed(t, lines[5]))},
	} {
		_, err := audit.ReadArchive(bytes.NewReader(gzipLines(t, c.lines)), nil)
		require.ErrorIs(t, err, audit.ErrArchiveIncomplete, c.name)
	}
	_, err = audit.ReadArchive(bytes.NewReader(archive.Bytes()[:archive.Len()-10]), nil)
	require.Error(t, err, "a truncated gzip stream")
}

// narrowed returns the manifest line m with its batch's ids ending before
// its last row.
func narrowed(t *testing.T, m []byte) []byte {
	t.Helper()
	var line struct{ Manifest audit.ArchiveChunk }
	require.NoError(t, json.Unmarshal(m, &line))
	line.Manifest.ToID = line.Manifest.LastID
	b, err := json.Marshal(map[string]audit.ArchiveChunk{"manifest": line.Manifest})
	require.NoError(t, err)
	return b
}

func gunzipLines(t *testing.T, b []byte) [][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	sc := bufio.NewScanner(gz)
	var out [][]byte
	for sc.Scan() {
		out = append(out, slices.Clone(sc.Bytes()))
	}
	require.NoError(t, sc.Err())
	return out
}

func gzipLines(t *testing.T, lines [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	for _, l := range lines {
		_, err := gz.Write(append(slices.Clone(l), '\n'))
		require.NoError(t, err)
	}
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

// compactChanges compares audited_changes as compact JSON: jsonb's text
// has spaces that the audit-row format has not.
func compactChanges(t *testing.T) cmp.Option {
	return cmp.Transformer("compact", func(c audit.Changes) string {
		b, err := json.Marshal(c)
		require.NoError(t, err)
		return string(b)
	})
}

var errBoom = errors.New("disk full")

// failingWriter accepts limit bytes, then fails.
type failingWriter struct{ n, limit int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errBoom
	}
	w.n += len(p)
	return len(p), nil
}

// failingSync writes, but fails to sync.
type failingSync struct{ bytes.Buffer }

func (*failingSync) Sync() error { return errBoom }

func TestPruneWithAFailingArchiveKeepsEveryRow(t *testing.T) {
	t.Parallel()
	clk := &clock{now: day0}
	b := setup(t, audit.Config{Now: clk.Now})
	seedDays(t, b, clk, []int64{1, 2}, 6)
	before := b.audits(t)
	for name, w := range map[string]interface{ Write([]byte) (int, error) }{
		"first write": &failingWriter{},
		"later write": &failingWriter{limit: 20},
		"sync":        &failingSync{},
	} {
		report, err := audit.Prune(b.ctx, b.db, audit.RetentionPolicy{Before: day(5)},
			&audit.PruneOptions{Archive: w, BatchSize: 2})
		require.ErrorIs(t, err, errBoom, name)
		require.Zero(t, report.Removed, name)
		require.Empty(t, report.Archived, name)
		if diff := cmp.Diff(before, b.audits(t)); diff != "" {
			t.Fatalf("%s: rows changed (-before +after):\n%s", name, diff)
		}
		require.Empty(t, b.horizons(t), name)
	}
}
