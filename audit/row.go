package audit

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/gormaudit/gormaudit/internal/auditsql"
)

// Action is what happened to an audited record.
type Action string

// The actions an audit row can record.
const (
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionDestroy Action = "destroy"
)

// Valid reports whether a is one of the three recorded actions.
func (a Action) Valid() bool {
	return a == ActionCreate || a == ActionUpdate || a == ActionDestroy
}

// TableName is the name of the table audit rows are written to.
const TableName = auditsql.Table

// Audit is one row of the audit log: one create, update or destroy of one
// record. Its JSON form is the well-known audit-row format (see the package
// documentation).
type Audit struct {
	// ID orders rows by insertion. It is not a commit order on PostgreSQL.
	ID int64 `gorm:"primaryKey;autoIncrement;index:idx_audits_account_id,priority:2;index:idx_audits_account_txid,priority:3" json:"id"`
	// AccountID is the tenant the audited record belongs to.
	AccountID int64 `gorm:"not null;default:0;index:idx_audits_account_id,priority:1;index:idx_audits_account_created,priority:1;index:idx_audits_account_txid,priority:1;index:idx_audits_account_user,priority:1" json:"account_id"`
	// AuditableID is the audited record's primary key, as text.
	AuditableID string `gorm:"size:255;not null;uniqueIndex:idx_audits_auditable_version,priority:2" json:"auditable_id"`
	// AuditableType is the audited model's registered type name, such as
	// "Runbooks::Step".
	AuditableType string `gorm:"size:255;not null;uniqueIndex:idx_audits_auditable_version,priority:1;index:idx_audits_account_created,priority:3" json:"auditable_type"`
	// AssociatedID and AssociatedType name the record this one belongs to
	// (a step's runbook), so that a parent's history can include its
	// children's rows. Empty when the model has no association.
	AssociatedID   string `gorm:"size:255;not null;default:'';index:idx_audits_associated,priority:2" json:"associated_id"`
	AssociatedType string `gorm:"size:255;not null;default:'';index:idx_audits_associated,priority:1" json:"associated_type"`
	// UserID and UserType identify the actor from the context ([WithActor]).
	UserID   string `gorm:"size:255;not null;default:'';index:idx_audits_account_user,priority:2" json:"user_id"`
	UserType string `gorm:"size:255;not null;default:''" json:"user_type"`
	// Action is create, update or destroy.
	Action Action `gorm:"size:16;not null" json:"action"`
	// AuditedChanges is {column: value} for create and destroy and
	// {column: [old, new]} for update.
	AuditedChanges Changes `gorm:"not null" json:"audited_changes"`
	// Version is 1 for a record's first audit and grows by one with each
	// audit of that record.
	Version int `gorm:"not null;uniqueIndex:idx_audits_auditable_version,priority:3" json:"version"`
	// Comment, RemoteAddress and RequestUUID come from the context
	// ([WithComment], [WithRequest]).
	Comment       string `gorm:"not null;default:''" json:"comment"`
	RemoteAddress string `gorm:"size:255;not null;default:''" json:"remote_address"`
	RequestUUID   string `gorm:"size:255;not null;default:''" json:"request_uuid"`
	// CreatedAt is when the audited change was written, in UTC, truncated
	// to the millisecond: the precision it is shown with, so that a moment
	// read from an audit row names exactly the state after that row.
	CreatedAt time.Time `gorm:"not null;index:idx_audits_account_created,priority:2;index:idx_audits_account_user,priority:3" json:"created_at"`
	// TransactionID is the PostgreSQL transaction that wrote the row
	// (pg_current_xact_id), 0 on SQLite. Ordering by (TransactionID, ID)
	// and handing out only rows below the oldest running transaction gives
	// pollers a cursor that never skips a row committed late; see the
	// httpapi package.
	TransactionID int64 `gorm:"not null;default:0;index:idx_audits_account_txid,priority:2" json:"-"`
}

// TableName implements gorm's Tabler.
func (Audit) TableName() string { return TableName }

// MarshalJSON renders the row in the audit-row format: created_at as RFC
// 3339 in UTC with milliseconds, like the hosted endpoint, and the metadata
// a row may lack (associated_id, associated_type, comment, remote_address,
// request_uuid) as null when it is empty.
func (a Audit) MarshalJSON() ([]byte, error) {
	type plain Audit
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return json.Marshal(struct {
		plain
		AssociatedID   *string `json:"associated_id"`
		AssociatedType *string `json:"associated_type"`
		Comment        *string `json:"comment"`
		RemoteAddress  *string `json:"remote_address"`
		RequestUUID    *string `json:"request_uuid"`
		CreatedAt      string  `json:"created_at"`
	}{
		plain: plain(a), AssociatedID: orNull(a.AssociatedID), AssociatedType: orNull(a.AssociatedType),
		Comment: orNull(a.Comment), RemoteAddress: orNull(a.RemoteAddress), RequestUUID: orNull(a.RequestUUID),
		CreatedAt: a.CreatedAt.UTC().Format(TimeFormat),
	})
}

// UnmarshalJSON reads the form MarshalJSON writes; the metadata may be null
// or a string, null reading as "".
func (a *Audit) UnmarshalJSON(b []byte) error {
	type plain Audit
	var v struct {
		plain
		CreatedAt string `json:"created_at"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Audit(v.plain)
	if v.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, v.CreatedAt)
		if err != nil {
			return errors.New("audit: created_at is not RFC 3339: " + v.CreatedAt)
		}
		a.CreatedAt = t
	}
	return nil
}

// TimeFormat is how an audit row's created_at is rendered in JSON: RFC 3339,
// UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Ref names one audited record: its registered auditable type and its primary
// key as text, as in an audit row's auditable_type and auditable_id.
type Ref struct {
	Type string `json:"auditable_type"`
	ID   string `json:"auditable_id"`
}

func (r Ref) String() string { return r.Type + " " + r.ID }
