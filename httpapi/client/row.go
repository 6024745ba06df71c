package client

import (
	"encoding/json"
	"time"
)

// Action is what happened to an audited record.
type Action string

// The actions an audit row can record.
const (
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionDestroy Action = "destroy"
)

// Row is one audit row as the endpoint sends it: one create, update or
// destroy of one record, in the audit-row format the server writes with
// audit.Audit's MarshalJSON. Metadata sent as null reads as "".
type Row struct {
	// ID is the row's id; polling with after_id resumes after it.
	ID int64 `json:"id"`
	// AccountID is the tenant the audited record belongs to.
	AccountID int64 `json:"account_id"`
	// AuditableID is the audited record's primary key, as text, and
	// AuditableType its type, such as "Runbooks::Step".
	AuditableID   string `json:"auditable_id"`
	AuditableType string `json:"auditable_type"`
	// AssociatedID and AssociatedType name the record this one belongs to
	// (a step's runbook); empty when there is none.
	AssociatedID   string `json:"associated_id"`
	AssociatedType string `json:"associated_type"`
	// UserID and UserType identify the actor.
	UserID   string `json:"user_id"`
	UserType string `json:"user_type"`
	// Action is create, update or destroy.
	Action Action `json:"action"`
	// AuditedChanges is {column: value} for create and destroy and
	// {column: [old, new]} for update, each value as its JSON text.
	AuditedChanges map[string]json.RawMessage `json:"audited_changes"`
	// Version is 1 for a record's first audit and grows by one with each
	// audit of that record.
	Version int `json:"version"`
	// Comment, RemoteAddress and RequestUUID are the write's context.
	Comment       string `json:"comment"`
	RemoteAddress string `json:"remote_address"`
	RequestUUID   string `json:"request_uuid"`
	// CreatedAt is when the audited change was written, in UTC, to the
	// millisecond.
	CreatedAt time.Time `json:"created_at"`
}
