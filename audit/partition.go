package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// This file holds the partitioned layout's API; see the package
// documentation's "Partitioned layout" and internal/auditsql for its SQL.

// ErrNoPartition is wrapped by a [*WriteError] when the audits table is
// partitioned and none of its partitions holds the audit rows' created_at:
// [Maintain] has not run for that month. The write is rolled back.
var ErrNoPartition = errors.New("audit: no partition of the audits table holds the write's created_at (run audit.Maintain)")

// ErrPartitionUnsupported is returned by [Partition] on a database that
// cannot partition the audits table (SQLite).
var ErrPartitionUnsupported = errors.New("audit: the database cannot partition the audits table (PostgreSQL only)")

// DefaultMonthsAhead is how many months after the current one [Maintain]
// creates partitions for by default.
const DefaultMonthsAhead = auditsql.DefaultMonthsAhead

// MaintainOptions adjusts [Maintain]. The zero value, or a nil
// *MaintainOptions, creates the partitions of the current month and the
// next three.
type MaintainOptions struct {
	// MonthsAhead is how many months after the current one get a
	// partition; a negative value creates the current month's only.
	// Defaults to 0: [DefaultMonthsAhead].
	MonthsAhead int
	// Now tells the current time, whose month in UTC is the first to get a
	// partition. Writes are audited at [Config].Now, so the two should
	// agree. Defaults to nil: time.Now.
	Now func() time.Time
}

// PartitionOptions adjusts [Partition]. The zero value, or a nil
// *PartitionOptions, uses the defaults of the embedded [MaintainOptions],
// which apply to the partitions Partition creates ahead.
type PartitionOptions struct {
	MaintainOptions
}

// window returns the first and last months o asks partitions for.
func (o *MaintainOptions) window() (first, last time.Time) {
	now := time.Now
	if o != nil && o.Now != nil {
		now = o.Now
	}
	ahead := DefaultMonthsAhead
	if o != nil && o.MonthsAhead != 0 {
		ahead = max(o.MonthsAhead, 0)
	}
	first = auditsql.MonthOf(now())
	return first, first.AddDate(0, ahead, 0)
}

// Partition gives the audits table the partitioned layout, on PostgreSQL:
// it creates the table so if it does not exist, converts it if it exists
// unpartitioned, and leaves it as it is if it is partitioned; then it
// creates the partitions [Maintain] creates. Run it once, before or after
// [Migrate] (which keeps a partitioned table so); it is safe to run again.
//
// Converting keeps every row, its id and the id sequence, so listings,
// polling cursors, histories and reverts read the same after it. It runs
// in one transaction that locks the audits table in ACCESS EXCLUSIVE mode
// from its start to its commit: no audited write and no read of the audit
// log proceeds meanwhile, and a write waiting for the lock fails if its
// own lock_timeout or statement_timeout runs out. The transaction renames
// the table, creates the partitioned one with the same columns and a
// partition for each month from the oldest row's to the current one,
// copies the rows, drops the old table, builds the indexes and analyzes
// the new table, so it lasts about as long as copying the table and
// building its indexes (see the README's "Partitioned layout" for a
// measured rate); a failure changes nothing. Grants, triggers and extra
// indexes on the old table are not carried over; a view or foreign key
// that depends on it makes the conversion fail.
//
// On SQLite it returns [ErrPartitionUnsupported].
func Partition(ctx context.Context, db *gorm.DB, opts *PartitionOptions) error {
	db = db.WithContext(ctx)
	if !dialect.Of(db).PartitionsAudits() {
		return ErrPartitionUnsupported
	}
	var mo *MaintainOptions
	if opts != nil {
		mo = &opts.MaintainOptions
	}
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := auditsql.LockMaintenance(tx); err != nil {
			return err
		}
		exists, partitioned, err := auditsql.Layout(tx)
		switch {
		case err != nil:
			return err
		case !exists:
			err = auditsql.CreatePartitioned(tx)
		case !partitioned:
			first, _ := mo.window()
			err = auditsql.ConvertToPartitioned(tx, first)
		}
		if err != nil {
			return err
		}
		return addMonths(tx, mo)
	})
	if err != nil {
		return fmt.Errorf("audit: partition: %w", err)
	}
	return nil
}

// Maintain creates the partitions of the partitioned audits table that
// the coming writes need: the current month's and the next
// [MaintainOptions].MonthsAhead months' (3 by default), those that do not
// exist yet. It is idempotent, and concurrent calls (several processes
// starting at once) wait for each other. Run it at start and then daily,
// or at least monthly: [Migrate] runs it, and a write whose month has no
// partition fails with [ErrNoPartition].
//
// Each partition is created as a table of its own and then attached, which
// locks the audits table in SHARE UPDATE EXCLUSIVE mode only: reads and
// writes go on. On a table that is not partitioned, and on SQLite, it does
// nothing.
func Maintain(ctx context.Context, db *gorm.DB, opts *MaintainOptions) error {
	db = db.WithContext(ctx)
	if !dialect.Of(db).PartitionsAudits() {
		return nil
	}
	err := db.Transaction(func(tx *gorm.DB) error {
		_, partitioned, err := auditsql.Layout(tx)
		if err != nil || !partitioned {
			return err
		}
		if err := auditsql.LockMaintenance(tx); err != nil {
			return err
		}
		return addMonths(tx, opts)
	})
	if err != nil {
		return fmt.Errorf("audit: maintain: %w", err)
	}
	return nil
}

// addMonths creates, in tx, the monthly partitions of o's window that do
// not exist.
func addMonths(tx *gorm.DB, o *MaintainOptions) error {
	first, last := o.window()
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		if _, err := auditsql.AddMonthPartition(tx, m); err != nil {
			return err
		}
	}
	return nil
}
