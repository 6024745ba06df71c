package audit

import (
	"fmt"
	"reflect"
	"strings"
)

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
