package auditsql

import (
	"strings"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/dialect"
)

// VersionsTable is the table of each record's latest version: one row per
// audited record, (auditable_type, auditable_id, version).
const VersionsTable = "audit_versions"

// versionsKey is the primary key of VersionsTable, the conflict target of
// every upsert of a next version.
const versionsKey = `("auditable_type","auditable_id")`

// CreateVersionsTable is the statement that creates VersionsTable if it
// does not exist.
const CreateVersionsTable = `CREATE TABLE IF NOT EXISTS "` + VersionsTable + `" (` +
	`"auditable_type" text NOT NULL, "auditable_id" text NOT NULL, "version" bigint NOT NULL, ` +
	`PRIMARY KEY ` + versionsKey + `)`

// SeedVersions is the statement that sets each record's counter to the
// latest version its audit rows hold, raising none: run once, right after
// CreateVersionsTable created the table, it lets the records of an
// upgraded database continue their versions. (WHERE TRUE lets SQLite tell
// the SELECT from the upsert.)
const SeedVersions = `INSERT INTO "` + VersionsTable + `" ("auditable_type","auditable_id","version") ` +
	`SELECT "auditable_type", "auditable_id", MAX("version") FROM "` + Table + `" WHERE TRUE ` +
	`GROUP BY "auditable_type", "auditable_id" ON CONFLICT ` + versionsKey + ` DO UPDATE SET "version" = ` +
	`CASE WHEN "excluded"."version" > "` + VersionsTable + `"."version" THEN "excluded"."version" ` +
	`ELSE "` + VersionsTable + `"."version" END`

// DropNextVersionFunction drops gormaudit_next_version, the PostgreSQL
// function that computed next versions (one more than a record's latest
// audit row's) before VersionsTable did. An older writer that still calls
// it then fails instead of recording a version its counter does not hold.
const DropNextVersionFunction = `DROP FUNCTION IF EXISTS gormaudit_next_version(text, text)`

// bumpVersions is the end of an upsert into VersionsTable whose selected
// version is the number of versions to take: it adds them to the record's
// counter, or starts the counter at them, and returns the record and its
// new latest version.
//
// This is the one definition of a next version. The upsert runs while the
// write holds the record's row lock, so the counter's row lock adds no
// contention, and it rolls back with the write, so versions have no gap.
// Under READ COMMITTED the upsert reads the counter as last committed, not
// as the statement's snapshot saw it; under REPEATABLE READ or
// SERIALIZABLE a counter that moved after the snapshot fails the statement
// with a serialization failure.
const bumpVersions = ` ON CONFLICT ` + versionsKey + ` DO UPDATE SET "version" = "` + VersionsTable +
	`"."version" + "excluded"."version" RETURNING "auditable_type", "auditable_id", "version"`

// recordKey names one audited record.
type recordKey struct{ typ, id string }

// TakeVersions takes the next versions of rows' records in tx, and returns
// the rows that are to be inserted, in their order, with their versions:
// each record's rows get consecutive versions in the order they are given.
// With gated, the rows of accounts that are not enabled take no version
// and are left out, as the database decides in the same statement (the
// gate comes before the counter). Their records' rows must be locked by
// the calling transaction.
func TakeVersions(tx *gorm.DB, d dialect.Dialect, rows []Row, gated bool) ([]Row, error) {
	counts := map[recordKey]int64{}
	var records []int // index in rows of each record's first row
	for i := range rows {
		k := recordKey{rows[i].AuditableType, rows[i].AuditableID}
		if counts[k] == 0 {
			records = append(records, i)
		}
		counts[k]++
	}
	sql, args := takeVersionsSQL(d, rows, records, counts, gated)
	next := make(map[recordKey]int64, len(records)) // the version of each record's next row
	res, err := tx.Raw(sql, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer res.Close()
	for res.Next() {
		var k recordKey
		var latest int64
		if err := res.Scan(&k.typ, &k.id, &latest); err != nil {
			return nil, err
		}
		next[k] = latest - counts[k] + 1
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	kept := rows[:0:0]
	for _, r := range rows {
		k := recordKey{r.AuditableType, r.AuditableID}
		if v, ok := next[k]; ok {
			r.Version = v
			next[k] = v + 1
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// takeVersionsSQL is the upsert of TakeVersions: one row per record (the
// rows at the indexes records), taking counts of its versions. Ungated, it
// inserts from its own VALUES list, the cheapest form on SQLite; gated, it
// selects from a VALUES list the rows whose account is enabled.
func takeVersionsSQL(d dialect.Dialect, rows []Row, records []int, counts map[recordKey]int64, gated bool) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 4*len(records))
	into := `INSERT INTO "` + VersionsTable + `" ("auditable_type","auditable_id","version") `
	if gated {
		b.WriteString(`WITH "__audit_v" ("account_id","auditable_type","auditable_id","version") AS (VALUES `)
	} else {
		b.WriteString(into + "VALUES ")
	}
	for n, i := range records {
		if n > 0 {
			b.WriteString(",")
		}
		r := &rows[i]
		c := counts[recordKey{r.AuditableType, r.AuditableID}]
		if gated {
			// A VALUES list that is not the INSERT's own gets no types
			// from it.
			b.WriteString("(?" + d.Cast("bigint") + ",?" + d.Cast("text") + ",?" + d.Cast("text") + ",?" + d.Cast("bigint") + ")")
			args = append(args, r.AccountID, r.AuditableType, r.AuditableID, c)
		} else {
			b.WriteString("(?,?,?)")
			args = append(args, r.AuditableType, r.AuditableID, c)
		}
	}
	if gated {
		b.WriteString(`) ` + into + `SELECT "auditable_type","auditable_id","version" FROM "__audit_v" WHERE ` +
			EnabledAccount(`"__audit_v"."account_id"`))
	}
	b.WriteString(bumpVersions)
	return b.String(), args
}

// TakeVersion is the statement that takes the next version of one record,
// for writers that run it once per audit row rather than [TakeVersions]
// once per batch (see [dialect.Dialect.InProcess]), followed by
// [InsertTaken]. Its parameters are the record's type and id and, with
// gated, its account; it changes one row, or none when the gate leaves the
// account out, which then takes no version. It returns nothing: SQLite
// runs an INSERT ... SELECT ... RETURNING several times slower than this
// INSERT and the SELECT of [InsertTaken].
func TakeVersion(d dialect.Dialect, gated bool) string {
	where := "TRUE"
	if gated {
		where = EnabledAccount("?" + d.Cast("bigint"))
	}
	take := `INSERT INTO "` + VersionsTable + `" ("auditable_type","auditable_id","version") SELECT ?` + d.Cast("text") +
		`, ?` + d.Cast("text") + `, 1 WHERE ` + where + bumpVersions
	return take[:strings.Index(take, " RETURNING ")]
}

// takenVersion is the version [TakeVersion] took for the record whose type
// and id are the next two parameters.
const takenVersion = `(SELECT "version" FROM "` + VersionsTable + `" WHERE "auditable_type" = ? AND "auditable_id" = ?)`
