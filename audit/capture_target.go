package audit

import (
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// target decides how the plugin treats a write statement: it returns the
// registered model whose audit rows the statement writes, nil for a write
// that is not audited, and refused true (having failed the statement with
// [ErrUnsupportedWrite]) for a write that reaches an audited table in a way
// that could not be audited.
//
// The table is the one the database will write, not the one gorm thinks of:
// db.Table(" steps"), db.Table(`"steps"`), db.Table("Steps") (SQLite folds
// case), db.Table("main.steps"), a second struct whose TableName is "steps"
// and an unregistered struct mapped onto the table all write the steps
// table. Each of them is refused unless it goes through the registered
// model. A registered model written into another, unaudited table (an
// archive, say) is not audited: nothing of the audited table changes.
func (p *Plugin) target(db *gorm.DB, action Action) (m *model, refused bool) {
	if db.Error != nil {
		return nil, false
	}
	stmt := db.Statement
	table, words := writtenTable(stmt)
	if table == TableName {
		return nil, false
	}
	if stmt.Schema != nil {
		m = p.models[stmt.Schema.ModelType]
	}
	written := p.tables[table]
	switch {
	case written != nil && written == m:
		return m, false
	case written != nil:
		return nil, p.refuse(db, written, action, fmt.Sprintf("write to table %q through its model (db.Model(&%s{}))",
			written.schema.Table, written.schema.ModelType.Name()))
	}
	for _, w := range words {
		if am, ok := p.tables[w]; ok {
			return nil, p.refuse(db, am, action, fmt.Sprintf("the table expression %q names the audited table %q; write to it through its model",
				tableExprSQL(stmt), am.schema.Table))
		}
	}
	return nil, false
}

func (p *Plugin) refuse(db *gorm.DB, m *model, action Action, how string) bool {
	_ = db.AddError(&WriteError{Type: m.typeName, Action: action, Err: fmt.Errorf("%w: %s", ErrUnsupportedWrite, how)})
	return true
}

// writtenTable returns the table a statement writes, normalised as
// normTable does, and every identifier-like word of a table expression too
// complex to name one table (a sub-select, a join), so that the caller can
// refuse expressions that mention an audited table.
func writtenTable(stmt *gorm.Statement) (table string, words []string) {
	sql := tableExprSQL(stmt)
	if sql == "" {
		return normTable(stmt.Table), nil
	}
	fields := strings.FieldsFunc(sql, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ','
	})
	// "t", "t alias", "t AS alias": one table.
	simple := len(fields) == 1 || len(fields) == 2 ||
		(len(fields) == 3 && strings.EqualFold(fields[1], "as"))
	if simple && len(stmt.TableExpr.Vars) == 0 && !strings.ContainsAny(sql, "()?") {
		return normTable(fields[0]), nil
	}
	for _, w := range strings.FieldsFunc(sql, func(r rune) bool {
		return !(r == '_' || r == '.' || r == '"' || r == '`' || r == '[' || r == ']' ||
			r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= 0x80)
	}) {
		words = append(words, normTable(w))
	}
	return "", words
}

func tableExprSQL(stmt *gorm.Statement) string {
	if stmt.TableExpr == nil {
		return ""
	}
	return strings.TrimSpace(stmt.TableExpr.SQL)
}

// normTable turns a table reference into the name it resolves to, for
// comparison: quotes removed, a schema prefix dropped, lower case. Folding
// case makes "Steps" match steps: SQLite resolves it so, and on PostgreSQL
// refusing a write to a differently quoted table is the safe mistake.
func normTable(ref string) string {
	ref = strings.Map(func(r rune) rune {
		switch r {
		case '"', '`', '[', ']':
			return -1
		}
		return r
	}, strings.TrimSpace(ref))
	if i := strings.LastIndexByte(ref, '.'); i >= 0 {
		ref = ref[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(ref))
}

// hasMissingWhere mirrors gorm's own guard: an update or delete without
// conditions needs AllowGlobalUpdate.
func hasMissingWhere(db *gorm.DB) bool {
	if db.AllowGlobalUpdate {
		return false
	}
	where, ok := db.Statement.Clauses["WHERE"]
	if !ok {
		return true
	}
	if _, softDelete := db.Statement.Clauses["soft_delete_enabled"]; softDelete {
		w, _ := where.Expression.(clause.Where)
		return len(w.Exprs) <= 1
	}
	return false
}

// refuseBuiltSQL refuses an update or a delete whose SQL was built before
// its callback: the plugin could not run it to see the rows it changes.
func refuseBuiltSQL(stmt *gorm.Statement) error {
	if stmt.SQL.Len() != 0 {
		return ErrUnsupportedWrite
	}
	return nil
}
