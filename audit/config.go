package audit

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

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
			rm.prepareCapture(db)
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
	rm := &model{typeName: m.Type, schema: sch, redact: map[string]bool{}, audited: map[string]bool{}}
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
		rm.jsonField = append(rm.jsonField, isJSONColumn(f))
		rm.audited[f.DBName] = true
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

// refuseCascades refuses a configuration in which the database itself would
// change an audited table: a foreign key declared on a registered model
// (gorm's constraint:OnDelete / OnUpdate tag) whose CASCADE, SET NULL or SET
// DEFAULT rewrites or deletes rows of an audited table when the referenced
// row changes. Those changes never pass through gorm, so they could not be
// recorded. Constraints created outside gorm's tags are the application's
// to keep free of such actions (see the package documentation).
func (p *Plugin) refuseCascades() error {
	for i, m := range p.cfg.Models {
		t := reflect.TypeOf(m.Value)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		rm := p.models[t]
		if rm == nil {
			continue
		}
		for _, rel := range rm.schema.Relationships.Relations {
			c := rel.ParseConstraint()
			if c == nil || c.Schema == nil || p.tables[normTable(c.Schema.Table)] == nil {
				continue
			}
			for _, action := range []struct{ on, value string }{{"OnDelete", c.OnDelete}, {"OnUpdate", c.OnUpdate}} {
				switch strings.ToUpper(strings.TrimSpace(action.value)) {
				case "CASCADE", "SET NULL", "SET DEFAULT":
					return &ConfigError{Field: fmt.Sprintf("Models[%d].Value", i),
						Reason: fmt.Sprintf("%T: foreign key %s has %s %s, which would change the audited table %s without an audit row",
							m.Value, c.Name, action.on, action.value, c.Schema.Table)}
				}
			}
		}
	}
	return nil
}
