package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
)

// SubscribersTableName is the table webhook subscribers and their delivery
// cursors are stored in.
const SubscribersTableName = "audit_subscribers"

// SecretPrefix starts every webhook secret made by [AddSubscriber].
const SecretPrefix = "whsec_"

// Subscriber is a webhook that receives an account's new audit rows, as
// stored by [AddSubscriber]. The [Notifier] delivers to it the rows that
// match all of its non-empty filters, in the polling stream's order, and
// keeps its place in that stream in the row itself.
type Subscriber struct {
	// ID identifies the subscriber; deliveries carry it in
	// X-Audit-Subscriber.
	ID int64 `gorm:"primaryKey;autoIncrement" json:"id"`
	// AccountID is the account whose rows are delivered.
	AccountID int64 `gorm:"not null;index" json:"account_id"`
	// URL receives the POSTs.
	URL string `gorm:"size:2048;not null" json:"url"`
	// Secret is the HMAC-SHA256 key of the signatures. It is stored as
	// given, since signing needs it, and never serialised to JSON.
	Secret string `gorm:"size:255;not null" json:"-"`
	// RunbookID, when set, selects the runbook's own rows and its steps'.
	RunbookID string `gorm:"size:255;not null;default:''" json:"runbook_id"`
	// AuditableType, when set, selects one type of record.
	AuditableType string `gorm:"size:255;not null;default:''" json:"auditable_type"`
	// Action, when set, selects one action.
	Action audit.Action `gorm:"size:16;not null;default:''" json:"action"`
	// CursorTxID and CursorID are the stream position of the last row
	// delivered with a 2xx answer (or of the log's end when the
	// subscriber was added): delivery resumes after it.
	CursorTxID int64 `gorm:"column:cursor_transaction_id;not null;default:0" json:"-"`
	CursorID   int64 `gorm:"not null;default:0" json:"last_delivered_id"`
	// Failures counts the failed attempts at the row being delivered, and
	// LastError tells why the last one failed; both are reset by a
	// delivery.
	Failures  int    `gorm:"not null;default:0" json:"failures"`
	LastError string `gorm:"size:1024;not null;default:''" json:"last_error"`
	// FailingSince is when the first of the failed attempts counted in
	// Failures began; nil when Failures is 0.
	FailingSince *time.Time `json:"failing_since"`
	// DeadAt, when set, is when the subscriber was dead-lettered: its
	// deliveries failed [NotifierOptions].MaxAttempts times in a row, or
	// for MaxFailingFor. The [Notifier] skips it until
	// [ResumeSubscriber]; its cursor is kept, so no row is lost.
	DeadAt *time.Time `json:"dead_at"`
	// DeliveredAt is when a row was last delivered.
	DeliveredAt *time.Time `json:"delivered_at"`
	CreatedAt   time.Time  `gorm:"not null" json:"created_at"`
}

// TableName implements gorm's Tabler.
func (Subscriber) TableName() string { return SubscribersTableName }

func (s *Subscriber) position() auditlist.Position {
	return auditlist.Position{TxID: s.CursorTxID, ID: s.CursorID}
}

// SubscriberSpec describes a subscriber to add with [AddSubscriber].
type SubscriberSpec struct {
	// AccountID is the account whose rows are delivered. Required.
	AccountID int64
	// URL is the absolute http or https URL that receives the POSTs.
	// Required.
	URL string
	// Secret is the signing key. Defaults to a new random secret starting
	// with [SecretPrefix], returned in [Subscriber.Secret].
	Secret string
	// RunbookID selects a runbook's own rows and its steps' rows. Defaults
	// to every runbook.
	RunbookID string
	// AuditableType is "Runbooks::Runbook" or "Runbooks::Step". Defaults to
	// both.
	AuditableType string
	// Action is create, update or destroy. Defaults to all three.
	Action audit.Action
	// FromStart delivers the account's whole log, oldest row first.
	// Defaults to false: only rows that reach the polling stream after the
	// subscriber is added.
	FromStart bool
	// AllowPrivateNetworks accepts a URL whose host is, or resolves to, a
	// loopback, private, link-local, multicast, shared or unspecified
	// address. Defaults to false: such a URL is refused with an error
	// wrapping [ErrForbiddenAddress], and the host must resolve. The
	// [Notifier] checks again at every delivery (see
	// [NotifierOptions].AllowPrivateNetworks).
	AllowPrivateNetworks bool
}

// ErrSubscriberNotFound is returned by [DeleteSubscriber] and
// [ResumeSubscriber] when the account has no subscriber with that id.
var ErrSubscriberNotFound = errors.New("webhook: subscriber not found")

// Migrate creates or updates the subscribers table. Run it with
// audit.Migrate in services that use the [Notifier].
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Subscriber{}); err != nil {
		return fmt.Errorf("webhook: migrate notifier: %w", err)
	}
	return nil
}

// AddSubscriber stores a subscriber and returns it, with its secret: hand
// the secret to the receiver so that it can check signatures with
// [VerifySignature]. The subscriber's cursor starts at the end of the
// account's log, or at its start with spec.FromStart.
func AddSubscriber(ctx context.Context, db *gorm.DB, spec SubscriberSpec) (Subscriber, error) {
	if spec.AccountID == 0 {
		return Subscriber{}, errors.New("webhook: add subscriber: AccountID is required")
	}
	u, err := url.Parse(spec.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Subscriber{}, errors.New("webhook: add subscriber: URL must be an absolute http or https URL")
	}
	if len(spec.URL) > 2048 || len(spec.Secret) > 255 || len(spec.RunbookID) > 255 {
		return Subscriber{}, errors.New("webhook: add subscriber: URL is limited to 2048 bytes, Secret and RunbookID to 255")
	}
	if spec.AuditableType != "" && !slices.Contains(auditlist.Types, spec.AuditableType) {
		return Subscriber{}, fmt.Errorf("webhook: add subscriber: AuditableType must be %q or %q", auditlist.Types[0], auditlist.Types[1])
	}
	if spec.Action != "" && !spec.Action.Valid() {
		return Subscriber{}, errors.New(`webhook: add subscriber: Action must be "create", "update" or "destroy"`)
	}
	if !spec.AllowPrivateNetworks {
		if err := checkHost(ctx, u.Hostname()); err != nil {
			return Subscriber{}, err
		}
	}
	if spec.Secret == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Subscriber{}, fmt.Errorf("webhook: add subscriber: %w", err)
		}
		spec.Secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	}
	sub := Subscriber{
		AccountID: spec.AccountID, URL: spec.URL, Secret: spec.Secret,
		RunbookID: spec.RunbookID, AuditableType: spec.AuditableType, Action: spec.Action,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	if !spec.FromStart {
		pg, err := auditlist.OutOfOrder(db, "webhook: add subscriber")
		if err != nil {
			return Subscriber{}, err
		}
		p, err := auditlist.End(ctx, db, spec.AccountID, pg)
		if err != nil {
			return Subscriber{}, fmt.Errorf("webhook: add subscriber: %w", err)
		}
		sub.CursorTxID, sub.CursorID = p.TxID, p.ID
	}
	if err := db.WithContext(ctx).Create(&sub).Error; err != nil {
		return Subscriber{}, fmt.Errorf("webhook: add subscriber: %w", err)
	}
	return sub, nil
}

// ListSubscribers returns the account's subscribers, oldest first.
func ListSubscribers(ctx context.Context, db *gorm.DB, accountID int64) ([]Subscriber, error) {
	var subs []Subscriber
	if err := db.WithContext(ctx).Where("account_id = ?", accountID).Order("id").Find(&subs).Error; err != nil {
		return nil, fmt.Errorf("webhook: list subscribers: %w", err)
	}
	return subs, nil
}

// DeleteSubscriber removes the account's subscriber id; a running
// [Notifier] stops delivering to it. It returns [ErrSubscriberNotFound] when
// the account has no such subscriber.
func DeleteSubscriber(ctx context.Context, db *gorm.DB, accountID, id int64) error {
	res := db.WithContext(ctx).Where("account_id = ? AND id = ?", accountID, id).Delete(&Subscriber{})
	if res.Error != nil {
		return fmt.Errorf("webhook: delete subscriber: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrSubscriberNotFound
	}
	return nil
}

// ResumeSubscriber takes the account's subscriber id out of the dead-letter
// state (see [Subscriber.DeadAt]), or resets the failure count of one that
// is failing: a running [Notifier] delivers to it again, within
// PollInterval, from its cursor, so the rows it missed arrive in order,
// the one that failed first. It returns [ErrSubscriberNotFound] when the
// account has no such subscriber.
func ResumeSubscriber(ctx context.Context, db *gorm.DB, accountID, id int64) error {
	res := db.WithContext(ctx).Model(&Subscriber{}).Where("account_id = ? AND id = ?", accountID, id).
		Updates(map[string]any{"dead_at": nil, "failures": 0, "failing_since": nil, "last_error": ""})
	if res.Error != nil {
		return fmt.Errorf("webhook: resume subscriber: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrSubscriberNotFound
	}
	return nil
}
