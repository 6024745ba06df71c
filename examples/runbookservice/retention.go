package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
)

// retention is what the -retention and -archive-dir flags ask for: keep the
// audit rows of the last keep (0: keep everything, the default), archiving
// the older ones to archiveDir first if it is set.
type retention struct {
	keep       time.Duration
	archiveDir string
}

// pruneInterval is how often the service prunes.
const pruneInterval = 24 * time.Hour

// startRetention prunes once now and then every pruneInterval, until ctx
// is done or the returned stop is called; stop waits for a prune under way
// to end. It does nothing when r.keep is 0.
func startRetention(ctx context.Context, db *gorm.DB, r retention, log *slog.Logger) (stop func()) {
	if r.keep <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(pruneInterval)
		defer tick.Stop()
		for {
			if _, err := pruneOnce(ctx, db, r, log); err != nil && ctx.Err() == nil {
				log.Error("prune audit rows", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// pruneOnce removes the audit rows older than r.keep, archived to a new
// file audits-<UTC time>.jsonl.gz of r.archiveDir if it is set. The file
// is kept only if rows were removed; it returns its path then.
func pruneOnce(ctx context.Context, db *gorm.DB, r retention, log *slog.Logger) (archive string, err error) {
	opts := &audit.PruneOptions{}
	var f *os.File
	if r.archiveDir != "" {
		if err := os.MkdirAll(r.archiveDir, 0o750); err != nil {
			return "", err
		}
		name := "audits-" + time.Now().UTC().Format("20060102T150405.000000000Z") + ".jsonl.gz"
		f, err = os.OpenFile(filepath.Join(r.archiveDir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			return "", err
		}
		opts.Archive = f
	}
	report, err := audit.Prune(ctx, db, audit.RetentionPolicy{Keep: r.keep}, opts)
	if f != nil {
		// Prune synced the archive before removing anything; a file that
		// holds no removed row is not worth keeping.
		err = errors.Join(err, f.Close())
		if report == nil || report.Removed == 0 {
			err = errors.Join(err, os.Remove(f.Name()))
		} else {
			archive = f.Name()
		}
	}
	if report != nil && report.Removed > 0 {
		log.Info("pruned audit rows", "removed", report.Removed, "created_before", report.Before,
			"partitions", report.Partitions, "archive", archive)
	}
	if err != nil {
		return archive, fmt.Errorf("prune audit rows: %w", err)
	}
	return archive, nil
}
