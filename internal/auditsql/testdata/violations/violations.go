package audit

import (
	"errors"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Audit stands for audit.Audit; its tags name columns and are not SQL.
type Audit struct {
	AuditableType string `gorm:"uniqueIndex:idx_audits_auditable_version" json:"auditable_type"`
}

func breaksEveryRule(db *gorm.DB, _ pgconn.PgError) error {
	var rows []Audit
	if db.Dialector.Name() == "postgres" {
		return nil
	}
	_ = `DELETE FROM audits`
	db.Pluck("auditable_type", &rows)
	db.Model(&Audit{})
	db.Table(TableName)
	db.Find(&[]Audit{})
	_ = "the audit_accounts table and an audit's version are not the audits table"
	return errors.New("audit: prose may name audited_changes")
}
