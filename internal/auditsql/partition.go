package auditsql

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The partitioned layout (PostgreSQL only, see
// [dialect.Dialect.PartitionsAudits]): the audits table is partitioned by
// RANGE (created_at), one partition per UTC month named audits_pYYYY_MM,
// with the primary key (id, created_at) (a partitioned table's unique
// indexes must hold its partition key) and the indexes of the plain
// layout declared on the parent, hence local to each partition. The index
// on a record's versions cannot be unique there; the version counter
// (VersionsTable) alone keeps versions unique.

// partitionPrefix starts the name of every monthly partition.
const partitionPrefix = Table + "_p"

// unpartitioned is the name the audits table is renamed to while it is
// converted; the conversion drops it.
const unpartitioned = Table + "_unpartitioned"

// idSequence is the sequence of the audits table's ids, as gorm names it
// for the plain layout (a bigserial column).
const idSequence = Table + "_id_seq"

// maintenanceLock is the key of the transaction-level advisory lock that
// serializes the creations of partitions, so that two processes
// maintaining the table at once do not both create a month.
const maintenanceLock = 0x676f726d61756469 // "gormaudi"

// DefaultMonthsAhead is how many months after the current one get a
// partition ahead by default.
const DefaultMonthsAhead = 3

// maxMonths bounds how many months of partitions a conversion creates: the
// span of the audit rows' created_at, which a stray timestamp (such as year
// 1) could make absurd.
const maxMonths = 1200

// columnsDDL declares the audits table's columns as gorm's AutoMigrate
// declares them for the Audit model in the plain layout, the id's sequence
// aside; TestPartitionedColumnsAreThePlainOnes (in the audit package)
// compares the two.
const columnsDDL = `"id" bigint NOT NULL DEFAULT nextval('"` + idSequence + `"'::regclass), ` +
	`"account_id" bigint NOT NULL DEFAULT 0, ` +
	`"auditable_id" varchar(255) NOT NULL, "auditable_type" varchar(255) NOT NULL, ` +
	`"associated_id" varchar(255) NOT NULL DEFAULT '', "associated_type" varchar(255) NOT NULL DEFAULT '', ` +
	`"user_id" varchar(255) NOT NULL DEFAULT '', "user_type" varchar(255) NOT NULL DEFAULT '', ` +
	`"action" varchar(16) NOT NULL, "audited_changes" jsonb NOT NULL, "version" bigint NOT NULL, ` +
	`"comment" text NOT NULL DEFAULT '', "remote_address" varchar(255) NOT NULL DEFAULT '', ` +
	`"request_uuid" varchar(255) NOT NULL DEFAULT '', "created_at" timestamptz NOT NULL, ` +
	`"transaction_id" bigint NOT NULL DEFAULT 0`

// partitionedIndexes are the indexes of the partitioned layout, named as
// the Audit model's gorm tags name them in the plain layout, so that
// AutoMigrate finds each and creates none (it would try a unique index
// the partitioned table cannot hold).
var partitionedIndexes = []struct{ name, columns string }{
	{VersionIndex, `"auditable_type","auditable_id","version"`},
	{"idx_audits_account_id", `"account_id","id"`},
	{"idx_audits_account_created", `"account_id","created_at","auditable_type"`},
	{"idx_audits_associated", `"associated_type","associated_id"`},
	{"idx_audits_account_txid", `"account_id","transaction_id","id"`},
	{"idx_audits_account_user", `"account_id","user_id","created_at"`},
}

// Layout reports whether the audits table that q's unqualified name finds
// exists, and whether it is partitioned. PostgreSQL only.
func Layout(q *gorm.DB) (exists, partitioned bool, err error) {
	var kind []string
	err = q.Raw(`SELECT relkind::text FROM pg_class WHERE oid = to_regclass(?)`, quoteIdent(Table)).Scan(&kind).Error
	if err != nil || len(kind) == 0 {
		return false, false, err
	}
	return true, kind[0] == "p", nil
}

// CreatePartitioned creates, in tx, the audits table in the partitioned
// layout, with its id sequence, primary key and indexes, and no partition.
// The audits table must not exist. PostgreSQL only.
func CreatePartitioned(tx *gorm.DB) error {
	for _, sql := range []string{
		`CREATE SEQUENCE IF NOT EXISTS ` + quoteIdent(idSequence),
		`CREATE TABLE ` + quoteIdent(Table) + ` (` + columnsDDL + `) PARTITION BY RANGE ("created_at")`,
		`ALTER SEQUENCE ` + quoteIdent(idSequence) + ` OWNED BY ` + quoteIdent(Table) + `."id"`,
	} {
		if err := tx.Exec(sql).Error; err != nil {
			return err
		}
	}
	return EnsurePartitionedIndexes(tx)
}

// EnsurePartitionedIndexes creates, on the partitioned audits table, its
// primary key and the indexes of partitionedIndexes that are missing; each
// cascades to every partition.
func EnsurePartitionedIndexes(tx *gorm.DB) error {
	var hasPK bool
	if err := tx.Raw(`SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(?) AND contype = 'p')`,
		quoteIdent(Table)).Scan(&hasPK).Error; err != nil {
		return err
	}
	if !hasPK {
		if err := tx.Exec(`ALTER TABLE ` + quoteIdent(Table) + ` ADD PRIMARY KEY ("id", "created_at")`).Error; err != nil {
			return err
		}
	}
	for _, ix := range partitionedIndexes {
		if err := tx.Exec(`CREATE INDEX IF NOT EXISTS ` + quoteIdent(ix.name) + ` ON ` + quoteIdent(Table) +
			` (` + ix.columns + `)`).Error; err != nil {
			return fmt.Errorf("index %s: %w", ix.name, err)
		}
	}
	return nil
}

// ConvertToPartitioned turns, in tx, the plain audits table into the
// partitioned layout, keeping every row and id and the id sequence: it
// locks the table (ACCESS EXCLUSIVE: no reader or writer until tx ends),
// renames it, creates the partitioned table with the same columns, a
// partition for every month from its oldest row's to its newest row's or
// through's, whichever is later, copies the rows, drops the old table, builds the primary key and
// indexes, and analyzes the new table. Grants, triggers and indexes of
// its own that the old table had are not carried over; a view or foreign
// key depending on it makes the conversion fail, changing nothing.
func ConvertToPartitioned(tx *gorm.DB, through time.Time) error {
	t, old := quoteIdent(Table), quoteIdent(unpartitioned)
	if err := tx.Exec(`LOCK TABLE ` + t + ` IN ACCESS EXCLUSIVE MODE`).Error; err != nil {
		return err
	}
	var span struct{ Oldest, Newest *time.Time }
	if err := tx.Raw(`SELECT MIN("created_at") AS oldest, MAX("created_at") AS newest FROM ` + t).Scan(&span).Error; err != nil {
		return err
	}
	var seq string
	if err := tx.Raw(`SELECT COALESCE(pg_get_serial_sequence(?, 'id'), '')`, t).Scan(&seq).Error; err != nil {
		return err
	}
	if seq == "" {
		return errors.New("the id column of the audits table has no sequence")
	}
	steps := []string{
		`ALTER TABLE ` + t + ` RENAME TO ` + old,
		`CREATE TABLE ` + t + ` (LIKE ` + old + ` INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ("created_at")`,
		// The sequence now belongs to the new table's id, so that dropping
		// the old table keeps it.
		`ALTER SEQUENCE ` + seq + ` OWNED BY ` + t + `."id"`,
	}
	for _, sql := range steps {
		if err := tx.Exec(sql).Error; err != nil {
			return err
		}
	}
	first, last := MonthOf(through), MonthOf(through)
	if span.Oldest != nil {
		first = MonthOf(*span.Oldest)
		if span.Newest.After(last) {
			last = MonthOf(*span.Newest)
		}
	}
	if n := months(first, last); n > maxMonths {
		return fmt.Errorf("the audit rows would need %d monthly partitions (%s to %s), more than the %d a conversion creates",
			n, first.Format("2006-01"), last.Format("2006-01"), maxMonths)
	}
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		if _, err := AddMonthPartition(tx, m); err != nil {
			return err
		}
	}
	for _, sql := range []string{`INSERT INTO ` + t + ` SELECT * FROM ` + old, `DROP TABLE ` + old} {
		if err := tx.Exec(sql).Error; err != nil {
			return err
		}
	}
	if err := EnsurePartitionedIndexes(tx); err != nil {
		return err
	}
	return tx.Exec(`ANALYZE ` + t).Error
}

// LockMaintenance takes, until tx ends, the advisory lock that serializes
// the creations of partitions.
func LockMaintenance(tx *gorm.DB) error {
	return tx.Exec(`SELECT pg_advisory_xact_lock(?)`, int64(maintenanceLock)).Error
}

// MonthOf is the start of t's month in UTC.
func MonthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// months counts the months from first to last, both month starts,
// including both.
func months(first, last time.Time) int {
	return (last.Year()-first.Year())*12 + int(last.Month()-first.Month()) + 1
}

// PartitionName is the name of the partition of the month that starts at
// month (see [MonthOf]): audits_pYYYY_MM.
func PartitionName(month time.Time) string {
	return partitionPrefix + month.UTC().Format("2006_01")
}

// AddMonthPartition creates and attaches, in tx, the partition of the
// month that starts at month, unless a table of its name exists; it
// reports whether it created it. It creates a table like the audits table
// and attaches it, which locks the audits table in SHARE UPDATE EXCLUSIVE
// mode only: readers and writers go on. A partition of another name that
// overlaps the month makes it fail.
func AddMonthPartition(tx *gorm.DB, month time.Time) (bool, error) {
	month = MonthOf(month)
	from, to := month, month.AddDate(0, 1, 0)
	return addPartition(tx, PartitionName(month), &from, &to)
}

// AddRangePartition creates and attaches, in tx, a partition named name
// holding the rows created in [from, to); a nil from or to leaves that end
// open. It reports false when a table of that name exists. It is for test
// layouts; production partitions are monthly ([AddMonthPartition]).
func AddRangePartition(tx *gorm.DB, name string, from, to *time.Time) (bool, error) {
	return addPartition(tx, name, from, to)
}

func addPartition(tx *gorm.DB, name string, from, to *time.Time) (bool, error) {
	var exists bool
	if err := tx.Raw(`SELECT to_regclass(?) IS NOT NULL`, quoteIdent(name)).Scan(&exists).Error; err != nil || exists {
		return false, err
	}
	bound := func(t *time.Time, open string) string {
		if t == nil {
			return open
		}
		return `'` + t.UTC().Format("2006-01-02 15:04:05.999999") + `+00'`
	}
	p, t := quoteIdent(name), quoteIdent(Table)
	for _, sql := range []string{
		`CREATE TABLE ` + p + ` (LIKE ` + t + ` INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS)`,
		`ALTER TABLE ` + t + ` ATTACH PARTITION ` + p + ` FOR VALUES FROM (` + bound(from, "MINVALUE") + `) TO (` +
			bound(to, "MAXVALUE") + `)`,
	} {
		if err := tx.Exec(sql).Error; err != nil {
			return false, fmt.Errorf("partition %s: %w", name, err)
		}
	}
	return true, nil
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
