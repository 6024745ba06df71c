package audit

import (
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/gormaudit/gormaudit/internal/dialect"
)

// PluginName is the name the plugin registers under in gorm.Config.Plugins.
const PluginName = "gormaudit:audit"

// Config configures a [Plugin]. Only Models is required.
type Config struct {
	// Models lists the audited models. Writes to any other model are left
	// untouched.
	Models []Model

	// RequireActor makes a write to an audited model fail with [ErrNoActor],
	// rolling it back, when its context has no [Actor]. Defaults to false:
	// such writes are audited with an empty user_id.
	RequireActor bool

	// EnabledAccountsOnly records audits only for accounts enabled with
	// [EnableAccount]; writes of other accounts produce no audit rows.
	// Defaults to false: every account is audited.
	EnabledAccountsOnly bool

	// AccountRefresh is ignored.
	//
	// Deprecated: whether an account is recorded is decided by the database
	// in each audit INSERT, from what the writing transaction sees of
	// audit_accounts, so there is no copy to refresh: [EnableAccount] and
	// [DisableAccount] take effect when their transaction commits.
	AccountRefresh time.Duration

	// Now returns the time stamped on audit rows. Defaults to time.Now.
	Now func() time.Time
}

// Model registers one audited model.
type Model struct {
	// Value is a pointer to the model, such as &runbooks.Step{}. Its primary
	// key must be a single column.
	Value any
	// Type is the auditable_type written on its rows, such as
	// "Runbooks::Step". Defaults to the Go type's name.
	Type string
	// Ignore lists columns never audited, beyond those never audited for
	// any model: the primary key, created_at and updated_at.
	Ignore []string
	// Redact lists columns whose values are recorded as [RedactedValue].
	// A change to such a column is still recorded, without its values.
	Redact []string
	// AccountColumn is the integer column holding the record's tenant,
	// copied to account_id. Defaults to "account_id"; a model without that
	// column is audited with account 0.
	AccountColumn string
	// AssociatedType and AssociatedColumn name the record this one belongs
	// to, such as a step's runbook ("Runbooks::Runbook", "runbook_id").
	AssociatedType   string
	AssociatedColumn string
}

// RedactedValue replaces the values of redacted columns in audited_changes.
const RedactedValue = "[REDACTED]"

// Plugin is the gorm plugin that writes audit rows. Create it with [New] and
// register it with db.Use.
type Plugin struct {
	cfg         Config
	models      map[reflect.Type]*model
	byType      map[string]*model
	tables      map[string]*model
	dialect     dialect.Dialect
	initialized atomic.Bool
}

var _ gorm.Plugin = (*Plugin)(nil)

// New returns a plugin for cfg. The configuration is checked when the plugin
// is registered with db.Use, which returns a *[ConfigError] if it is invalid.
func New(cfg Config) *Plugin {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Plugin{cfg: cfg}
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return PluginName }

// Initialize implements gorm.Plugin: it resolves the registered models against
// db's naming strategy and registers the create, update and delete callbacks.
// A plugin serves one *gorm.DB; initializing it twice is an error.
func (p *Plugin) Initialize(db *gorm.DB) error {
	if !p.initialized.CompareAndSwap(false, true) {
		return &ConfigError{Field: "Plugin", Reason: "already initialized; use one audit.New per *gorm.DB"}
	}
	p.dialect = dialect.Of(db)
	if !p.dialect.Supported() {
		return &ConfigError{Field: "Dialector", Reason: fmt.Sprintf("%q is not supported (postgres, sqlite)", p.dialect.Name())}
	}
	for _, chain := range [][]string{db.Callback().Create().Clauses, db.Callback().Update().Clauses, db.Callback().Delete().Clauses} {
		if !slices.Contains(chain, "RETURNING") {
			return &ConfigError{Field: "Dialector", Reason: "RETURNING must be enabled (postgres.Config.WithoutReturning is not supported)"}
		}
	}
	if err := p.resolveModels(db); err != nil {
		return err
	}
	return p.registerCallbacks(db)
}

// model is a registered model resolved against its gorm schema.
type model struct {
	typeName   string
	schema     *schema.Schema
	pk         *schema.Field
	fields     []*schema.Field // audited columns, in schema order
	redact     map[string]bool
	account    *schema.Field // nil: account 0
	assocType  string
	assocField *schema.Field

	// PostgreSQL: SQL renderings of the audited columns as JSON and of the
	// keys, for audit rows written by the change's own statement (see
	// fused.go); snapshotSQL is empty when the model cannot use them.
	columnSQL                                []string
	jsonText                                 []bool // a json (not jsonb) column, compared as jsonb
	snapshotSQL, pkSQL, accountSQL, assocSQL string

	// checkedSQL is columnSQL refusing the values recordField refuses.
	checkedSQL []string
}

func (p *Plugin) resolveModels(db *gorm.DB) error {
	if len(p.cfg.Models) == 0 {
		return &ConfigError{Field: "Models", Reason: "no models registered"}
	}
	p.models = make(map[reflect.Type]*model, len(p.cfg.Models))
	p.byType = make(map[string]*model, len(p.cfg.Models))
	p.tables = make(map[string]*model, len(p.cfg.Models))
	for i, m := range p.cfg.Models {
		field := fmt.Sprintf("Models[%d]", i)
		rm, err := resolveModel(db, field, m)
		if err != nil {
			return err
		}
		if _, dup := p.byType[rm.typeName]; dup {
			return &ConfigError{Field: field + ".Type", Reason: fmt.Sprintf("%q registered twice", rm.typeName)}
		}
		if _, dup := p.models[rm.schema.ModelType]; dup {
			return &ConfigError{Field: field + ".Value", Reason: fmt.Sprintf("%s registered twice", rm.schema.ModelType)}
		}
		if p.dialect.SingleStatementCapture() {
			rm.prepareSnapshotSQL(db)
		}
		p.models[rm.schema.ModelType] = rm
		p.byType[rm.typeName] = rm
		p.tables[normTable(rm.schema.Table)] = rm
	}
	return p.refuseCascades()
}

// resolveModel resolves registration m (Config.Models[i], named field in
// errors) against db's naming strategy.
func resolveModel(db *gorm.DB, field string, m Model) (*model, error) {
	if m.Value == nil {
		return nil, &ConfigError{Field: field + ".Value", Reason: "is nil"}
	}
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(m.Value); err != nil {
		return nil, &ConfigError{Field: field + ".Value", Reason: err.Error()}
	}
	sch := stmt.Schema
	rm := &model{typeName: m.Type, schema: sch, redact: map[string]bool{}}
	if rm.typeName == "" {
		rm.typeName = sch.ModelType.Name()
	}
	if len(sch.PrimaryFields) != 1 {
		return nil, &ConfigError{Field: field + ".Value", Reason: fmt.Sprintf("%s must have exactly one primary key column", sch.ModelType)}
	}
	rm.pk = sch.PrimaryFields[0]
	column := func(setting, name string) (*schema.Field, error) {
		f := sch.LookUpField(name)
		if f == nil || f.DBName == "" {
			return nil, &ConfigError{Field: field + "." + setting, Reason: fmt.Sprintf("%s has no column %q", sch.Table, name)}
		}
		return f, nil
	}
	ignore := map[string]bool{}
	for _, c := range m.Ignore {
		f, err := column("Ignore", c)
		if err != nil {
			return nil, err
		}
		ignore[f.DBName] = true
	}
	for _, c := range m.Redact {
		f, err := column("Redact", c)
		if err != nil {
			return nil, err
		}
		rm.redact[f.DBName] = true
	}
	if err := rm.resolveRelated(field, m, column); err != nil {
		return nil, err
	}
	for _, f := range sch.Fields {
		if f.DBName == "" || f.PrimaryKey || ignore[f.DBName] || f.AutoCreateTime != 0 || f.AutoUpdateTime != 0 ||
			f.DBName == "created_at" || f.DBName == "updated_at" {
			continue
		}
		rm.fields = append(rm.fields, f)
	}
	return rm, nil
}

// resolveRelated sets the model's account column and associated record.
func (rm *model) resolveRelated(field string, m Model, column func(setting, name string) (*schema.Field, error)) error {
	sch := rm.schema
	accountColumn := m.AccountColumn
	if accountColumn == "" {
		accountColumn = "account_id"
	}
	if f := sch.LookUpField(accountColumn); f != nil && f.DBName != "" {
		if !isInteger(f.FieldType) {
			return &ConfigError{Field: field + ".AccountColumn", Reason: fmt.Sprintf("%s.%s is not an integer", sch.Table, f.DBName)}
		}
		rm.account = f
	} else if m.AccountColumn != "" {
		return &ConfigError{Field: field + ".AccountColumn", Reason: fmt.Sprintf("%s has no column %q", sch.Table, m.AccountColumn)}
	}
	if (m.AssociatedType == "") != (m.AssociatedColumn == "") {
		return &ConfigError{Field: field + ".AssociatedType", Reason: "AssociatedType and AssociatedColumn go together"}
	}
	if m.AssociatedColumn != "" {
		f, err := column("AssociatedColumn", m.AssociatedColumn)
		if err != nil {
			return err
		}
		rm.assocType, rm.assocField = m.AssociatedType, f
	}
	return nil
}

func isInteger(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// registerCallbacks wraps gorm's create, update and delete callbacks: the
// plugin runs an audited model's write itself (so that its audit rows come
// from the rows as written, in the same statement on PostgreSQL) and hands
// every other statement to gorm's own callback unchanged.
func (p *Plugin) registerCallbacks(db *gorm.DB) error {
	for _, c := range []struct {
		name      string
		processor interface {
			Get(string) func(*gorm.DB)
			Replace(string, func(*gorm.DB)) error
		}
		wrap func(func(*gorm.DB)) func(*gorm.DB)
	}{
		{"gorm:create", db.Callback().Create(), p.create},
		{"gorm:update", db.Callback().Update(), p.update},
		{"gorm:delete", db.Callback().Delete(), p.delete},
	} {
		own := c.processor.Get(c.name)
		if own == nil {
			return &ConfigError{Field: "Dialector", Reason: c.name + " callback is missing"}
		}
		if err := c.processor.Replace(c.name, c.wrap(own)); err != nil {
			return fmt.Errorf("audit: replace %s callback: %w", c.name, err)
		}
	}
	return nil
}

// TypeOf returns the auditable type registered for a model value, such as
// "Runbooks::Step" for *runbooks.Step.
func (p *Plugin) TypeOf(value any) (string, bool) {
	t := reflect.TypeOf(value)
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	m, ok := p.models[t]
	if !ok {
		return "", false
	}
	return m.typeName, true
}

// FromDB returns the plugin registered on db, if any.
func FromDB(db *gorm.DB) (*Plugin, bool) {
	pl, ok := db.Config.Plugins[PluginName]
	if !ok {
		return nil, false
	}
	p, ok := pl.(*Plugin)
	return p, ok
}
