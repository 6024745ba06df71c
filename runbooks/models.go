package runbooks

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/uuid"
)

// The auditable types of the two models, as they appear in auditable_type.
const (
	TypeRunbook = "Runbooks::Runbook"
	TypeStep    = "Runbooks::Step"
)

// Runbook is an ordered list of steps run during an incident. Deleting one
// discards it (sets DiscardedAt); gorm's Unscoped().Delete removes it.
type Runbook struct {
	ID          string         `gorm:"primaryKey;size:36" json:"id"`
	AccountID   int64          `gorm:"not null;index" json:"account_id"`
	Name        string         `gorm:"not null" json:"name"`
	Description string         `gorm:"not null" json:"description"`
	OwnerID     *string        `gorm:"size:36" json:"owner_id"`
	DiscardedAt gorm.DeletedAt `gorm:"index" json:"discarded_at"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	Steps       []Step         `gorm:"foreignKey:RunbookID" json:"steps,omitempty"`
}

// BeforeCreate gives a new runbook a random UUID unless it has an ID.
func (r *Runbook) BeforeCreate(*gorm.DB) error {
	if r.ID == "" {
		r.ID = uuid.New()
	}
	return nil
}

// Step is one action of a runbook. Its Rules and Conditions are not audited,
// like the hosted service's.
type Step struct {
	ID              string         `gorm:"primaryKey;size:36" json:"id"`
	AccountID       int64          `gorm:"not null;index" json:"account_id"`
	RunbookID       string         `gorm:"size:36;not null;index" json:"runbook_id"`
	Name            string         `gorm:"not null" json:"name"`
	Config          JSON           `json:"config"`
	Repeats         bool           `gorm:"not null" json:"repeats"`
	Position        int            `gorm:"not null" json:"position"`
	ActionID        *string        `gorm:"size:36" json:"action_id"`
	Automatic       bool           `gorm:"not null" json:"automatic"`
	RepeatsAt       *time.Time     `json:"repeats_at"`
	DiscardedAt     gorm.DeletedAt `gorm:"index" json:"discarded_at"`
	ExecutionID     *string        `gorm:"size:36" json:"execution_id"`
	DelayDuration   Duration       `gorm:"not null" json:"delay_duration"`
	DerivedFromID   *string        `gorm:"size:36" json:"derived_from_id"`
	RepeatsDuration *Duration      `json:"repeats_duration"`
	Rules           JSON           `json:"rules"`
	Conditions      JSON           `json:"conditions"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

// BeforeCreate gives a new step a random UUID unless it has an ID.
func (s *Step) BeforeCreate(*gorm.DB) error {
	if s.ID == "" {
		s.ID = uuid.New()
	}
	return nil
}

// Models returns the audit registrations of Runbook and Step, for
// audit.Config.Models: a step's rules and conditions are never audited, and
// a step's rows are associated with its runbook.
func Models() []audit.Model {
	return []audit.Model{
		{Value: &Runbook{}, Type: TypeRunbook},
		{
			Value: &Step{}, Type: TypeStep,
			Ignore:         []string{"rules", "conditions"},
			AssociatedType: TypeRunbook, AssociatedColumn: "runbook_id",
		},
	}
}

// Migrate creates or updates the runbooks and steps tables.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Runbook{}, &Step{}); err != nil {
		return fmt.Errorf("runbooks: migrate: %w", err)
	}
	return nil
}
