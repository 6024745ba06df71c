package pgfuse

// Column describes one audited column of a model, in the order its
// audited_changes list them.
type Column struct {
	// Name is the column's name in the database.
	Name string
	// SQLType is its full data type as the migrator declares it, in lower
	// case, such as "varchar(255)", "timestamptz" or "jsonb".
	SQLType string
	// JSON is true when the encoder renders the column's values as JSON
	// documents (the field's data type is JSON).
	JSON bool
	// Plain is true when the encoder renders the field's values as
	// encoding/json renders the value the database stores: strings,
	// numbers, booleans and driver.Valuers, not types with a JSON form of
	// their own.
	Plain bool
	// Redacted is true when the column's values are recorded as
	// [Rules].RedactedValue.
	Redacted bool
}

// Key describes a key column copied to an audit row as text: the primary
// key (auditable_id) or the associated record's key (associated_id).
type Key struct {
	// Name is the column's name in the database.
	Name string
	// Integer is true for an integer column, whose zero renders as "",
	// as the encoder renders an unset key.
	Integer bool
}

// Model describes an audited model.
type Model struct {
	// Columns are the audited columns, in the encoder's order.
	Columns []Column
	// PK is the primary key.
	PK Key
	// Account names the integer column holding the record's account; ""
	// for a model whose records are audited with account 0.
	Account string
	// Associated is the key of the record this one belongs to, nil for
	// none.
	Associated *Key
}

// Rules are the encoder's rules the rendered SQL follows, the same for
// every model.
type Rules struct {
	// RedactedValue replaces the values of redacted columns.
	RedactedValue string
	// MaxNesting is the deepest nesting of arrays and objects a recorded
	// JSON document may have.
	MaxNesting int
	// JSONNullReason is the reason a JSON column's document null is
	// refused with.
	JSONNullReason string
}

// Capture is the SQL of one model's single-statement writes, built once
// when the model is registered.
type Capture struct {
	// snapshot is the audited_changes of a create or destroy of a row of
	// Written.
	snapshot string
	// updateRows is the middle of an update statement: from the end of
	// the change's own UPDATE to the start of the audit INSERT, with the
	// diff and the same-record guard of each updated row.
	updateRows string
	// cols and redacted are the model's columns and the rendering of a
	// redacted value; guard is the same-record guard of an updated row.
	cols            []column
	redacted, guard string
	// auditableID, accountID and associatedID are the keys of a row of
	// Written, as text and as an integer.
	auditableID, accountID, associatedID string
}

// Build renders the SQL of model m's single-statement writes under rules r.
// It reports false when m has no audited column or a column PostgreSQL
// cannot render exactly as the encoder does (bytea, arrays, timestamps
// without time zone, types with a JSON form of their own); such a model
// keeps the two-statement path.
func Build(m Model, r Rules) (*Capture, bool) {
	if len(m.Columns) == 0 {
		return nil, false
	}
	cols := make([]column, len(m.Columns))
	for i, c := range m.Columns {
		rc, ok := render(c, r)
		if !ok {
			return nil, false
		}
		cols[i] = rc
	}
	redacted := `to_jsonb(` + quoteLiteral(r.RedactedValue) + `::text)`
	c := &Capture{
		snapshot:     snapshotOf(cols, redacted, Written),
		auditableID:  keyText(m.PK),
		accountID:    "0",
		associatedID: `''`,
	}
	if m.Account != "" {
		c.accountID = `COALESCE(` + Written + "." + QuoteIdent(m.Account) + `, 0)`
	}
	if m.Associated != nil {
		c.associatedID = keyText(*m.Associated)
	}
	c.cols, c.redacted, c.guard = cols, redacted, sameRecordGuard(m, updatedOld, updatedNew)
	c.updateRows = c.updateRowsOf(diffOf(cols, redacted, updatedOld, updatedNew))
	return c, true
}

// updateRowsOf is the middle of an update statement whose diff is diff.
func (c *Capture) updateRowsOf(diff string) string {
	return "), " + Written + ` AS (SELECT "p".*, ` + diff + ` AS "__audit_changes", ` + c.guard +
		` AS "__audit_guard" FROM "__audit_p" AS "p"), `
}

// assignedDiff is the diff of an update whose SET assigns the columns
// assigned: the other columns cannot have changed unless the database
// changed them itself (a trigger, a generated column), so the diff renders
// the assigned columns, and falls back to every column when one of the
// others did change. Both give exactly the diff of every column.
func (c *Capture) assignedDiff(assigned []string) string {
	set := make(map[string]bool, len(assigned))
	for _, a := range assigned {
		set[a] = true
	}
	var mine, others []column
	for _, col := range c.cols {
		if set[col.Name] {
			mine = append(mine, col)
		} else {
			others = append(others, col)
		}
	}
	full := diffOf(c.cols, c.redacted, updatedOld, updatedNew)
	if len(others) == 0 {
		return full
	}
	changed := "NULL"
	if len(mine) > 0 {
		changed = diffConcat(mine, c.redacted, updatedOld, updatedNew)
	}
	return "CASE WHEN " + rowOf(others, updatedOld) + " IS NOT DISTINCT FROM " + rowOf(others, updatedNew) +
		" THEN " + changed + " ELSE " + full + " END"
}

// keyText renders key k of a row of Written as the text an audit row holds.
func keyText(k Key) string {
	c := Written + "." + QuoteIdent(k.Name)
	if k.Integer {
		return `CASE WHEN ` + c + ` IS NULL OR ` + c + ` = 0 THEN '' ELSE ` + c + `::text END`
	}
	return `COALESCE(` + c + `::text, '')`
}
