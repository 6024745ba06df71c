package auditsql

import (
	"time"

	"gorm.io/gorm"
)

// Entry is an audit row as a history rebuild reads it.
type Entry struct {
	ID          int64
	AuditableID string
	Version     int
	Action      string
	// Changes is audited_changes as stored: JSON text.
	Changes   []byte
	CreatedAt time.Time
	AccountID int64
}

// Since chooses, for each record, the audit rows a rebuild from a point
// needs: the rows after the point and the last one at or before it.
type Since struct {
	at      *time.Time
	auditID *int64
	version int
	limit   int
}

// Limit is s reading at most n rows, the newest; 0 means no limit. A
// limited read is for one record only.
func (s Since) Limit(n int) Since {
	s.limit = n
	return s
}

// SinceTime is the point of moment at: the rows created after it, and the
// record's last row created at or before it.
func SinceTime(at time.Time) Since { return Since{at: &at} }

// SinceAudit is the point right after audit row auditID: the rows after it,
// and the record's last row up to it (a record's rows have ids in the order
// of its versions).
func SinceAudit(auditID int64) Since { return Since{auditID: &auditID} }

// SinceVersion is the point of a record's version: the rows from that
// version on.
func SinceVersion(version int) Since { return Since{version: version} }

// where restricts q, a query on the audits table, to the rows of s.
func (s Since) where(q *gorm.DB) *gorm.DB {
	switch {
	case s.at != nil:
		return q.Where(`version >= `+lastUpTo("version", "created_at"), s.at.UTC())
	case s.auditID != nil:
		return q.Where(`id >= `+lastUpTo("id", "id"), *s.auditID)
	}
	return q.Where("version >= ?", s.version)
}

// lastUpTo is the SQL of the greatest col among the audit rows of the
// current row's record whose column bound is at most the parameter; 0 if
// there is none.
func lastUpTo(col, bound string) string {
	t := `"` + Table + `"`
	return `COALESCE((SELECT MAX(a2.` + col + `) FROM ` + t + ` a2 WHERE a2.auditable_type = ` + t + `.auditable_type ` +
		`AND a2.auditable_id = ` + t + `.auditable_id AND a2.` + bound + ` <= ?), 0)`
}

// History reads the audit rows of the records of type typ with the given
// ids that a rebuild from since needs, ordered by id and then version
// descending.
func History(q *gorm.DB, typ string, ids []string, since Since) (out []Entry, err error) {
	q = since.where(q.Table(Table).Where("auditable_type = ? AND auditable_id IN ?", typ, ids))
	if since.limit > 0 {
		// One record: an order the index serves, so only limit rows are read.
		return scanEntries(q.Order("version DESC").Limit(since.limit))
	}
	return scanEntries(q.Order("auditable_id, version DESC"))
}

// UpTo reads the audit rows of record (typ, id) with versions up to
// version, in version order: what a forward replay to version needs.
func UpTo(q *gorm.DB, typ, id string, version int) ([]Entry, error) {
	return scanEntries(q.Table(Table).Where("auditable_type = ? AND auditable_id = ? AND version <= ?", typ, id, version).
		Order("version"))
}

// Last reads the last audit row of record (typ, id): none, or one.
func Last(q *gorm.DB, typ, id string) ([]Entry, error) {
	return scanEntries(q.Table(Table).Where("auditable_type = ? AND auditable_id = ?", typ, id).
		Order("version DESC").Limit(1))
}

// scanEntries runs q, a query on the audits table, selecting the columns of
// [Entry] and scanning them without gorm's per-row reflection: histories can
// be long.
func scanEntries(q *gorm.DB) (out []Entry, err error) {
	rows, err := q.Select("id, auditable_id, version, action, audited_changes, created_at, account_id").Rows()
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.ID, &e.AuditableID, &e.Version, &e.Action, &e.Changes, &e.CreatedAt, &e.AccountID); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CreatedAtUpTo returns the created_at of the last audit row whose id is at
// most auditID; ok is false when there is none.
func CreatedAtUpTo(q *gorm.DB, auditID int64) (at time.Time, ok bool, err error) {
	var ats []time.Time
	if err := q.Table(Table).Where("id <= ?", auditID).Order("id DESC").Limit(1).Pluck("created_at", &ats).Error; err != nil {
		return time.Time{}, false, err
	}
	if len(ats) == 0 {
		return time.Time{}, false, nil
	}
	return ats[0], true, nil
}

// Bounds returns the first and last versions recorded for a record; 0, 0
// when it has none.
func Bounds(q *gorm.DB, typ, id string) (first, last int, err error) {
	var b struct{ First, Last int }
	err = q.Table(Table).Select("COALESCE(MIN(version),0) AS first, COALESCE(MAX(version),0) AS last").
		Where("auditable_type = ? AND auditable_id = ?", typ, id).Scan(&b).Error
	return b.First, b.Last, err
}

// LatestAccount returns the account_id of a record's latest audit row; 0
// when it has none.
func LatestAccount(q *gorm.DB, typ, id string) (int64, error) {
	var acct int64
	err := q.Table(Table).Select("account_id").Where("auditable_type = ? AND auditable_id = ?", typ, id).
		Order("version DESC").Limit(1).Scan(&acct).Error
	return acct, err
}

// VersionID returns the id of a record's audit row of version version; ok
// is false when the record has no such version.
func VersionID(q *gorm.DB, typ, id string, version int) (auditID int64, ok bool, err error) {
	var ids []int64
	if err := q.Table(Table).Where("auditable_type = ? AND auditable_id = ? AND version = ?", typ, id, version).
		Pluck("id", &ids).Error; err != nil {
		return 0, false, err
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// IsOfRecordOrMember reports whether audit row auditID is a row of the
// record (typ, id), or of a record of type memberType associated with it.
func IsOfRecordOrMember(q *gorm.DB, auditID int64, typ, id, memberType string) (bool, error) {
	var n int64
	err := q.Table(Table).Where("id = ? AND ((auditable_type = ? AND auditable_id = ?) OR "+
		"(auditable_type = ? AND associated_type = ? AND associated_id = ?))",
		auditID, typ, id, memberType, typ, id).Count(&n).Error
	return n > 0, err
}

// MemberIDs lists, in order, the distinct ids of the records of type
// memberType whose audit rows name the record (typ, id) as their
// associated record.
func MemberIDs(q *gorm.DB, typ, id, memberType string) ([]string, error) {
	var ids []string
	err := q.Table(Table).Distinct("auditable_id").
		Where("associated_type = ? AND associated_id = ? AND auditable_type = ?", typ, id, memberType).
		Order("auditable_id").Pluck("auditable_id", &ids).Error
	return ids, err
}

// OtherAccount reports whether record (typ, id) has an audit row with a
// version above version whose account_id is not account.
func OtherAccount(q *gorm.DB, typ, id string, version int, account int64) (bool, error) {
	var ids []int64
	err := q.Table(Table).Where("auditable_type = ? AND auditable_id = ? AND version > ? AND account_id <> ?",
		typ, id, version, account).Limit(1).Pluck("id", &ids).Error
	return len(ids) > 0, err
}
