package auditsql

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The statements of retention (audit.Prune): which rows a policy removes,
// reading them in id order for the archive, deleting them in id ranges,
// and on PostgreSQL's partitioned layout listing, reading, detaching and
// dropping partitions.

// AccountCutoff is the cutoff of a group of accounts: their rows created
// before Before are removed.
type AccountCutoff struct {
	Accounts []int64
	Before   time.Time
}

// Range is a span of created_at: From inclusive, To exclusive.
type Range struct{ From, To time.Time }

// PruneScope selects the audit rows a retention policy removes.
type PruneScope struct {
	// Before is the cutoff of every account named neither in Accounts
	// nor in Kept; nil keeps their rows.
	Before *time.Time
	// Accounts are the cutoffs of the accounts with a horizon of their
	// own, one entry per distinct cutoff.
	Accounts []AccountCutoff
	// Kept are the accounts none of whose rows is removed.
	Kept []int64
	// Skip leaves out the rows created in these ranges: those of the
	// partitions dropped whole.
	Skip []Range
}

// where is the condition on a row of the audits table that s removes it.
func (s *PruneScope) where() (string, []any) {
	var terms []string
	var args []any
	listed := append([]int64(nil), s.Kept...)
	for _, g := range s.Accounts {
		terms = append(terms, `(account_id IN ? AND created_at < ?)`)
		args = append(args, g.Accounts, g.Before.UTC())
		listed = append(listed, g.Accounts...)
	}
	if s.Before != nil {
		if len(listed) > 0 {
			terms = append(terms, `(account_id NOT IN ? AND created_at < ?)`)
			args = append(args, listed, s.Before.UTC())
		} else {
			terms = append(terms, `created_at < ?`)
			args = append(args, s.Before.UTC())
		}
	}
	if len(terms) == 0 {
		return `1 = 0`, nil
	}
	w := `(` + strings.Join(terms, ` OR `) + `)`
	for _, r := range s.Skip {
		w += ` AND NOT (created_at >= ? AND created_at < ?)`
		args = append(args, r.From.UTC(), r.To.UTC())
	}
	return w, args
}

// Stored is an audit row with every column as stored, for the archive.
type Stored struct {
	ID, AccountID                int64
	AuditableID, AuditableType   string
	AssociatedID, AssociatedType string
	UserID, UserType, Action     string
	// Changes is audited_changes as stored: JSON text.
	Changes                             []byte
	Version                             int
	Comment, RemoteAddress, RequestUUID string
	CreatedAt                           time.Time
	TransactionID                       int64
}

// scanStored runs q and returns its rows, without gorm's per-row
// reflection: an archive can hold millions of rows. They are read in full
// before the caller encodes them, so that the connection is not held
// meanwhile (on SQLite, writers may be waiting for it).
func scanStored(q *gorm.DB) (out []Stored, err error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		var s Stored
		if err := rows.Scan(&s.ID, &s.AccountID, &s.AuditableID, &s.AuditableType, &s.AssociatedID, &s.AssociatedType,
			&s.UserID, &s.UserType, &s.Action, &s.Changes, &s.Version, &s.Comment, &s.RemoteAddress, &s.RequestUUID,
			&s.CreatedAt, &s.TransactionID); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// IDRange returns the least and greatest ids of the audits table, leaving
// out the rows created in skip; ok is false when there is none.
func IDRange(q *gorm.DB, skip []Range) (lo, hi int64, ok bool, err error) {
	var r struct{ Lo, Hi sql.NullInt64 }
	w, args := `1 = 1`, []any{}
	for _, s := range skip {
		w += ` AND NOT (created_at >= ? AND created_at < ?)`
		args = append(args, s.From.UTC(), s.To.UTC())
	}
	if err := q.Raw(`SELECT MIN(id) AS lo, MAX(id) AS hi FROM `+Table+` WHERE `+w, args...).Scan(&r).Error; err != nil {
		return 0, 0, false, err
	}
	return r.Lo.Int64, r.Hi.Int64, r.Lo.Valid, nil
}

// FirstFrom returns the id and created_at of the row with the least id at
// or above id; ok is false when there is none.
func FirstFrom(q *gorm.DB, id int64) (first int64, at time.Time, ok bool, err error) {
	var rs []struct {
		ID        int64
		CreatedAt time.Time
	}
	if err := q.Raw(`SELECT id, created_at FROM `+Table+` WHERE id >= ? ORDER BY id LIMIT 1`, id).Scan(&rs).Error; err != nil {
		return 0, time.Time{}, false, err
	}
	if len(rs) == 0 {
		return 0, time.Time{}, false, nil
	}
	return rs[0].ID, rs[0].CreatedAt, true, nil
}

// PrunedRows returns the rows of s whose id is in [from, to), in id order.
func PrunedRows(q *gorm.DB, s *PruneScope, from, to int64) ([]Stored, error) {
	w, args := s.where()
	return scanStored(q.Raw(`SELECT `+listColumns+` FROM `+Table+` WHERE id >= ? AND id < ? AND `+w+` ORDER BY id`,
		append([]any{from, to}, args...)...))
}

// Removed is a row a DELETE removed.
type Removed struct{ ID, AccountID int64 }

// DeletePruned deletes the rows of s whose id is in [from, to) and returns
// them.
func DeletePruned(q *gorm.DB, s *PruneScope, from, to int64) ([]Removed, error) {
	w, args := s.where()
	var out []Removed
	err := q.Raw(`DELETE FROM `+Table+` WHERE id >= ? AND id < ? AND `+w+` RETURNING id, account_id`,
		append([]any{from, to}, args...)...).Scan(&out).Error
	return out, err
}

// Partition is one partition of a partitioned audits table.
type Partition struct {
	// Name is the table's name, Qualified its name with its schema,
	// quoted for SQL.
	Name, Qualified string
	// From and To are its bounds on created_at; Bounded is false for the
	// DEFAULT partition or one bounded by MINVALUE or MAXVALUE.
	From, To time.Time
	Bounded  bool
	// Default is true for the DEFAULT partition.
	Default bool
	// DetachPending is true for a partition whose DETACH ... CONCURRENTLY
	// was interrupted: it must be finalized.
	DetachPending bool
}

// Partitions lists the partitions of the audits table in the order of
// their bounds; none when it is not partitioned. PostgreSQL only.
func Partitions(q *gorm.DB) ([]Partition, error) {
	var rs []struct {
		Name, Qualified string
		Lo, Hi          sql.NullTime
		DetachPending   bool
		IsDefault       bool
	}
	err := q.Raw(`SELECT c.relname AS name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
	(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz AS lo,
	(regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz AS hi,
	i.inhdetachpending AS detach_pending, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = to_regclass('"` + Table + `"')
ORDER BY 3, 1`).Scan(&rs).Error
	if err != nil {
		return nil, err
	}
	out := make([]Partition, len(rs))
	for i, r := range rs {
		out[i] = Partition{Name: r.Name, Qualified: r.Qualified, From: r.Lo.Time, To: r.Hi.Time,
			Bounded: r.Lo.Valid && r.Hi.Valid, DetachPending: r.DetachPending, Default: r.IsDefault}
	}
	return out, nil
}

// PartitionKeeps reports whether partition p holds a row that s does not
// remove, among the rows of the accounts with a cutoff of their own
// (accounts) or none (kept). Rows of other accounts are not checked: the
// caller drops p only when its bounds end before the global cutoff.
func PartitionKeeps(q *gorm.DB, p Partition, accounts []AccountCutoff, kept []int64) (bool, error) {
	var terms []string
	var args []any
	for _, g := range accounts {
		terms = append(terms, `(account_id IN ? AND created_at >= ?)`)
		args = append(args, g.Accounts, g.Before.UTC())
	}
	if len(kept) > 0 {
		terms = append(terms, `account_id IN ?`)
		args = append(args, kept)
	}
	if len(terms) == 0 {
		return false, nil
	}
	var ones []int
	err := q.Raw(`SELECT 1 FROM `+p.Qualified+` WHERE `+strings.Join(terms, ` OR `)+` LIMIT 1`, args...).Scan(&ones).Error
	return len(ones) > 0, err
}

// PartitionRows returns up to limit rows of partition p whose id is above
// after, in id order.
func PartitionRows(q *gorm.DB, p Partition, after int64, limit int) ([]Stored, error) {
	return scanStored(q.Raw(`SELECT `+listColumns+` FROM `+p.Qualified+` WHERE id > ? ORDER BY id LIMIT ?`, after, limit))
}

// AccountRows is what a table holds of one account: how many rows, and
// the greatest id among them.
type AccountRows struct {
	AccountID, Count, MaxID int64
}

// PartitionAccounts returns what partition p holds of each account.
func PartitionAccounts(q *gorm.DB, p Partition) ([]AccountRows, error) {
	var out []AccountRows
	err := q.Raw(`SELECT account_id, COUNT(*) AS count, MAX(id) AS max_id FROM ` + p.Qualified +
		` GROUP BY account_id ORDER BY account_id`).Scan(&out).Error
	return out, err
}

// DetachPartition detaches partition p from the audits table without
// blocking writers (or finishes an interrupted detach). It cannot run in a
// transaction.
func DetachPartition(q *gorm.DB, p Partition) error {
	mode := "CONCURRENTLY"
	if p.DetachPending {
		mode = "FINALIZE"
	}
	return q.Exec(fmt.Sprintf(`ALTER TABLE "%s" DETACH PARTITION %s %s`, Table, p.Qualified, mode)).Error
}

// DropDetached drops partition p once detached.
func DropDetached(q *gorm.DB, p Partition) error {
	return q.Exec(`DROP TABLE ` + p.Qualified).Error
}

// LatestVersion returns the latest version recorded for record (typ, id),
// as its version counter holds it: also when every audit row of the record
// was pruned. ok is false when the record has none.
func LatestVersion(q *gorm.DB, typ, id string) (version int, ok bool, err error) {
	var vs []int
	err = q.Table(VersionsTable).Where("auditable_type = ? AND auditable_id = ?", typ, id).Limit(1).
		Pluck("version", &vs).Error
	if err != nil || len(vs) == 0 {
		return 0, false, err
	}
	return vs[0], true, nil
}

// Exists reports whether audit row auditID exists.
func Exists(q *gorm.DB, auditID int64) (bool, error) {
	var ids []int64
	err := q.Table(Table).Where("id = ?", auditID).Limit(1).Pluck("id", &ids).Error
	return len(ids) > 0, err
}
