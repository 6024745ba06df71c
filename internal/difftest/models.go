package difftest

import (
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Auditable types of the tester's own models.
const (
	TypeSample = "Difftest::Sample"
	TypeGauge  = "Difftest::Gauge"
)

// Sample is a test-only audited model with a database-assigned integer key
// and a column of every value class the tester draws. Its bytea column keeps
// it on the plugin's portable write path on PostgreSQL.
type Sample struct {
	ID          int64          `gorm:"primaryKey;autoIncrement"`
	AccountID   int64          `gorm:"not null;index"`
	Label       string         `gorm:"not null"`
	Note        *string        // nullable text
	Blob        []byte         // bytea on PostgreSQL, blob on SQLite
	Score       float64        `gorm:"not null"`
	At          time.Time      `gorm:"not null"`
	Doc         runbooks.JSON  // jsonb on PostgreSQL
	DiscardedAt gorm.DeletedAt `gorm:"index"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Gauges      []Gauge `gorm:"foreignKey:SampleID"`
}

// TableName implements gorm's Tabler.
func (Sample) TableName() string { return "difftest_samples" }

// Gauge is a test-only audited model like [Sample] without a bytea column,
// so that on PostgreSQL it takes the plugin's one-statement path. Gauges can
// be created nested under a sample.
type Gauge struct {
	ID          int64  `gorm:"primaryKey;autoIncrement"`
	AccountID   int64  `gorm:"not null;index"`
	SampleID    *int64 `gorm:"index"`
	Label       string `gorm:"not null"`
	Note        *string
	Score       *float64
	At          time.Time `gorm:"not null"`
	Doc         runbooks.JSON
	DiscardedAt gorm.DeletedAt `gorm:"index"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's Tabler.
func (Gauge) TableName() string { return "difftest_gauges" }

// stepAlias is a second struct whose TableName is "steps"; it is not
// registered with the plugin (write form 5).
type stepAlias struct {
	ID        string `gorm:"primaryKey"`
	AccountID int64
	RunbookID string
	Name      string
	Position  int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TableName implements gorm's Tabler.
func (stepAlias) TableName() string { return "steps" }

// stepRow is an unregistered struct without a table name of its own, mapped
// onto the steps table with db.Table (write form 5).
type stepRow struct {
	ID            string
	AccountID     int64
	RunbookID     string
	Name          string
	Position      int
	DelayDuration string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Models returns the plugin registration of every model the tester writes.
func Models() []audit.Model {
	return append(runbooks.Models(),
		audit.Model{Value: &Sample{}, Type: TypeSample},
		audit.Model{Value: &Gauge{}, Type: TypeGauge},
	)
}

// kind is how a column's values are compared: each kind has one canonical
// text form for database values and for audited_changes values.
type kind int

const (
	kString kind = iota
	kBytes
	kInt
	kFloat
	kBool
	kTime
	kJSON
)

type column struct {
	name string
	kind kind
}

// table describes an audited table independently of the plugin: its
// auditable type, key, account column, association and audited columns.
type table struct {
	typ      string
	name     string
	intKey   bool
	assocTyp string // associated_type, "" for none
	assocCol string
	cols     []column // audited columns
}

var (
	tRunbook = &table{typ: runbooks.TypeRunbook, name: "runbooks", cols: []column{
		{"account_id", kInt}, {"name", kString}, {"description", kString}, {"owner_id", kString}, {"discarded_at", kTime},
	}}
	tStep = &table{typ: runbooks.TypeStep, name: "steps", assocTyp: runbooks.TypeRunbook, assocCol: "runbook_id", cols: []column{
		{"account_id", kInt}, {"runbook_id", kString}, {"name", kString}, {"config", kJSON}, {"repeats", kBool},
		{"position", kInt}, {"action_id", kString}, {"automatic", kBool}, {"repeats_at", kTime}, {"discarded_at", kTime},
		{"execution_id", kString}, {"delay_duration", kString}, {"derived_from_id", kString}, {"repeats_duration", kString},
	}}
	tSample = &table{typ: TypeSample, name: "difftest_samples", intKey: true, cols: []column{
		{"account_id", kInt}, {"label", kString}, {"note", kString}, {"blob", kBytes}, {"score", kFloat},
		{"at", kTime}, {"doc", kJSON}, {"discarded_at", kTime},
	}}
	tGauge = &table{typ: TypeGauge, name: "difftest_gauges", intKey: true, cols: []column{
		{"account_id", kInt}, {"sample_id", kInt}, {"label", kString}, {"note", kString}, {"score", kFloat},
		{"at", kTime}, {"doc", kJSON}, {"discarded_at", kTime},
	}}
	tables = []*table{tRunbook, tStep, tSample, tGauge}
)

func tableOf(typ string) *table {
	for _, t := range tables {
		if t.typ == typ {
			return t
		}
	}
	return nil
}
