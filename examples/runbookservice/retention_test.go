package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/fixture"
)

func TestRetentionFlags(t *testing.T) {
	var help bytes.Buffer
	_, _ = parseFlags([]string{"-h"}, &help)
	require.Contains(t, help.String(), "-retention")
	require.Contains(t, help.String(), "-archive-dir")

	cfg, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, retention{}, cfg.retention, "off by default")
	cfg, err = parseFlags([]string{"-retention", "8760h", "-archive-dir", "/var/archive"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, retention{keep: 8760 * time.Hour, archiveDir: "/var/archive"}, cfg.retention)
	for _, args := range [][]string{{"-retention", "-1h"}, {"-archive-dir", "/var/archive"}} {
		_, err = parseFlags(args, io.Discard)
		require.Error(t, err, "%v", args)
	}
}

// clock is a settable audit.Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestPruneOnceArchivesToAFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	db := fixture.Open(t, &fixture.Options{
		Config:     audit.Config{EnabledAccountsOnly: true, Now: clk.Now},
		Migrations: []fixture.Migration{httpapi.Migrate},
	}).DB
	_, err := seed(ctx, db, "", "")
	require.NoError(t, err)
	var seeded []audit.Audit
	require.NoError(t, db.Order("id").Find(&seeded).Error)
	require.NotEmpty(t, seeded)

	dir := filepath.Join(t.TempDir(), "archive")
	r := retention{keep: 24 * time.Hour, archiveDir: dir}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path, err := pruneOnce(ctx, db, r, log)
	require.NoError(t, err)
	require.Empty(t, path, "nothing is a day old yet")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "an archive of nothing is not kept")

	clk.add(25 * time.Hour)
	path, err = pruneOnce(ctx, db, r, log)
	require.NoError(t, err)
	require.Equal(t, dir, filepath.Dir(path))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var archived []int64
	_, err = audit.ReadArchive(f, func(a audit.Audit) error { archived = append(archived, a.ID); return nil })
	require.NoError(t, err)
	want := make([]int64, len(seeded))
	for i, a := range seeded {
		want[i] = a.ID
	}
	require.Equal(t, want, archived)
	var left int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&left).Error)
	require.Zero(t, left)

	// With no retention, the service never prunes.
	startRetention(ctx, db, retention{}, log)()
}
