package difftest

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// The shadow log is the database's own account of what was committed: row
// triggers on every audited table, installed in the test database only,
// append each inserted, updated or deleted row (before and after, rendered
// by one database function) to shadowTable. Changes rolled back vanish
// with their transaction or savepoint; a record's changes are serialized
// by its row lock, so the shadow ids give each record's change order also
// under concurrent writers.
const shadowTable = "difftest_shadow"

// installShadow creates shadowTable and the triggers that fill it.
func (e *Env) installShadow() error {
	if e.PG {
		return e.installShadowPG()
	}
	return e.installShadowSQLite()
}

func (e *Env) installShadowPG() error {
	stmts := []string{
		`CREATE TABLE ` + shadowTable + ` (id bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL,
			pk text NOT NULL, old_row jsonb, new_row jsonb)`,
		`CREATE FUNCTION difftest_shadow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, new_row) VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text, to_jsonb(NEW));
			ELSIF TG_OP = 'UPDATE' THEN
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, old_row, new_row) VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text, to_jsonb(OLD), to_jsonb(NEW));
			ELSE
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, old_row) VALUES (TG_TABLE_NAME, TG_OP, OLD.id::text, to_jsonb(OLD));
			END IF;
			RETURN NULL;
		END $$`,
	}
	for _, t := range tables {
		stmts = append(stmts, `CREATE TRIGGER difftest_shadow AFTER INSERT OR UPDATE OR DELETE ON `+t.name+
			` FOR EACH ROW EXECUTE FUNCTION difftest_shadow()`)
	}
	for _, s := range stmts {
		if err := e.DB.Exec(s).Error; err != nil {
			return fmt.Errorf("difftest: install the shadow log: %w", err)
		}
	}
	return nil
}

// installShadowSQLite builds, for each audited table, a json_object of all
// its columns (listed with PRAGMA table_info). Each value is rendered by
// sqliteValue so that the JSON holds only ASCII: SQLite's JSON functions
// would refuse a blob and may mangle text that is not valid UTF-8.
func (e *Env) installShadowSQLite() error {
	if err := e.DB.Exec(`CREATE TABLE ` + shadowTable + ` (id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL,
		op TEXT NOT NULL, pk TEXT NOT NULL, old_row TEXT, new_row TEXT)`).Error; err != nil {
		return fmt.Errorf("difftest: install the shadow log: %w", err)
	}
	for _, t := range tables {
		var cols []string
		if err := e.DB.Raw(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, t.name).Scan(&cols).Error; err != nil {
			return fmt.Errorf("difftest: columns of %s: %w", t.name, err)
		}
		row := func(ref string) string {
			parts := make([]string, 0, 2*len(cols))
			for _, c := range cols {
				parts = append(parts, `'`+c+`'`, sqliteValue(ref+`."`+c+`"`))
			}
			return `json_object(` + strings.Join(parts, ", ") + `)`
		}
		for _, s := range []string{
			`CREATE TRIGGER difftest_shadow_` + t.name + `_insert AFTER INSERT ON ` + t.name + ` BEGIN
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, new_row) VALUES ('` + t.name + `', 'INSERT', CAST(NEW.id AS TEXT), ` + row("NEW") + `); END`,
			`CREATE TRIGGER difftest_shadow_` + t.name + `_update AFTER UPDATE ON ` + t.name + ` BEGIN
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, old_row, new_row) VALUES ('` + t.name + `', 'UPDATE', CAST(NEW.id AS TEXT), ` + row("OLD") + `, ` + row("NEW") + `); END`,
			`CREATE TRIGGER difftest_shadow_` + t.name + `_delete AFTER DELETE ON ` + t.name + ` BEGIN
				INSERT INTO ` + shadowTable + ` (tbl, op, pk, old_row) VALUES ('` + t.name + `', 'DELETE', CAST(OLD.id AS TEXT), ` + row("OLD") + `); END`,
		} {
			if err := e.DB.Exec(s).Error; err != nil {
				return fmt.Errorf("difftest: install the shadow log on %s: %w", t.name, err)
			}
		}
	}
	return nil
}

// sqliteValue renders column x as a JSON value that tells storage classes
// apart and rounds nothing: NULL as null, an integer as a number, a real
// with 17 significant digits, text and blobs as the hex of their bytes.
func sqliteValue(x string) string {
	return `CASE typeof(` + x + `) WHEN 'null' THEN NULL WHEN 'integer' THEN ` + x +
		` WHEN 'real' THEN 'r:' || printf('%!.17g', ` + x + `) WHEN 'text' THEN 't:' || hex(` + x + `)` +
		` ELSE 'b:' || hex(` + x + `) END`
}

// change is one committed change of a record's audited columns, as the
// shadow log tells it or as an audit row records it.
type change struct {
	Action  string   // create, update or destroy
	Columns []string // the audited columns an update changed, sorted
	Account int64    // the record's account at the change
	Ref     string   // where it comes from: "shadow #id" or the audit row
}

// same reports whether c and d record the same change (wherever each
// comes from).
func (c change) same(d change) bool {
	return c.Action == d.Action && c.Account == d.Account && slices.Equal(c.Columns, d.Columns)
}

// shadowChange is one row of the shadow log of an audited table.
type shadowChange struct {
	ID      int64
	Tbl     string
	Op      string
	PK      string
	Account int64
	Discard bool   // an update that set discarded_at (from NULL)
	Rekey   bool   // an update that changed the primary key
	Changed string // the audited columns whose rendering differs, each followed by a comma
}

// shadowQuery selects the rows of the shadow log after an id (bound once
// per table) in change order, each with the record's account at the
// change and the audited columns whose rendering differs between old and
// new: the database compares them, so that values Go cannot decode
// compare too.
var shadowQuery = func() string {
	selects := make([]string, 0, len(tables))
	for _, t := range tables {
		diff := make([]string, 0, len(t.cols))
		for _, c := range t.cols {
			diff = append(diff, fmt.Sprintf(`CASE WHEN (old_row -> '%[1]s') IS DISTINCT FROM (new_row -> '%[1]s') THEN '%[1]s,' ELSE '' END`, c.name))
		}
		selects = append(selects, `SELECT id, tbl, op, pk,
			CAST(COALESCE(new_row ->> 'account_id', old_row ->> 'account_id') AS BIGINT) AS account,
			(old_row ->> 'discarded_at') IS NULL AND (new_row ->> 'discarded_at') IS NOT NULL AS discard,
			(old_row -> 'id') IS DISTINCT FROM (new_row -> 'id') AS rekey,
			`+strings.Join(diff, " || ")+` AS changed
			FROM `+shadowTable+` WHERE tbl = '`+t.name+`' AND id > @after`)
	}
	return strings.Join(selects, " UNION ALL ") + ` ORDER BY id`
}()

// readShadow returns the rows of the shadow log after id after. The
// statement is prepared once per database: it is long, and run after
// every unit.
func readShadow(q *gorm.DB, after int64) ([]shadowChange, error) {
	var out []shadowChange
	err := q.Session(&gorm.Session{PrepareStmt: true}).Raw(shadowQuery, sql.Named("after", after)).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("difftest: read the shadow log: %w", err)
	}
	return out, nil
}

// asChange classifies a shadow row: an insert is a create, a delete a
// destroy, an update that sets discarded_at and changes no other audited
// column (a soft delete) a destroy, any other update of audited columns an
// update naming them; ok is false for an update that changed no audited
// column, which must not be recorded. An update that sets discarded_at
// along with other columns (a Save of a stale struct re-discarding a
// record) must be an update: a destroy row is a snapshot of the record,
// which replays only when nothing but discarded_at changed.
func (s shadowChange) asChange() (c change, ok bool) {
	c = change{Account: s.Account, Ref: fmt.Sprintf("shadow #%d %s in account %d, audited columns changed: %q", s.ID, s.Op, s.Account, s.Changed)}
	switch {
	case s.Op == "INSERT":
		c.Action = "create"
	case s.Op == "DELETE", s.Discard && s.Changed == "discarded_at,":
		c.Action = "destroy"
	case s.Changed == "":
		return c, false
	default:
		c.Action = "update"
		c.Columns = strings.Split(strings.TrimSuffix(s.Changed, ","), ",")
		slices.Sort(c.Columns)
	}
	return c, true
}

// auditChange is what audit row a records, in the form of [change].
func auditChange(a auditRow) change {
	c := change{Action: a.Action, Account: a.AccountID, Ref: a.String()}
	if a.Action != "update" {
		return c
	}
	var ch map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a.Changes), &ch); err != nil {
		c.Columns = []string{"(audited_changes unreadable: " + err.Error() + ")"}
		return c
	}
	c.Columns = slices.Sorted(maps.Keys(ch))
	return c
}

// shadowLog is the shadow log read so far, as each record's changes that
// must be recorded.
type shadowLog struct {
	want     map[recKey][]change
	after    int64 // the highest shadow id read
	recorded recordedFunc
	audited  map[auditRow]change // audit rows already decoded
}

func tableNamed(name string) *table {
	i := slices.IndexFunc(tables, func(t *table) bool { return t.name == name })
	return tables[i]
}

func newShadowLog(recorded recordedFunc) *shadowLog {
	return &shadowLog{want: map[recKey][]change{}, recorded: recorded, audited: map[auditRow]change{}}
}

// extend reads the rows added to the shadow log since the last call. Ids
// are handed out before commit, so this sees every committed row only when
// no writing transaction was open during the previous call (a sequential
// run between units); a concurrent run reads its log once, at the end.
// Changes of accounts that are not recorded are left out: gated runs
// enable accounts only in transactions that roll back, so the recorded
// set is fixed.
func (l *shadowLog) extend(q *gorm.DB) error {
	rows, err := readShadow(q, l.after)
	if err != nil {
		return err
	}
	for _, sc := range rows {
		k := recKey{tableNamed(sc.Tbl).typ, sc.PK}
		if sc.Op == "UPDATE" && sc.Rekey {
			return diverge("committed primary-key change", "%s: shadow #%d changed a record's key", k, sc.ID)
		}
		if c, ok := sc.asChange(); ok && l.recorded(c.Account) {
			l.want[k] = append(l.want[k], c)
		}
		l.after = sc.ID
	}
	return nil
}

// check compares, record by record, the committed changes of audited
// columns in the shadow log with the record's audit rows in s (the log and
// s read with no writer in between): one row per change, in
// order, of the same action, an update naming the columns it changed,
// filed under the record's account at the change; no row for a change
// that was rolled back or changed no audited column, and none for an
// account that is not recorded.
func (l *shadowLog) check(s *snapshot) error {
	got := map[recKey][]auditRow{}
	for _, a := range s.audits {
		got[a.key()] = append(got[a.key()], a)
	}
	keys := slices.Collect(maps.Keys(l.want))
	for k := range got {
		if _, ok := l.want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b recKey) int { return strings.Compare(a.String(), b.String()) })
	ignoreRef := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Ref" }, cmp.Ignore())
	for _, k := range keys {
		rows := got[k]
		slices.SortStableFunc(rows, func(a, b auditRow) int { return a.Version - b.Version })
		var audited []change
		for _, a := range rows {
			c, ok := l.audited[a]
			if !ok {
				c = auditChange(a)
				l.audited[a] = c
			}
			audited = append(audited, c)
		}
		if slices.EqualFunc(l.want[k], audited, change.same) {
			continue // cmp.Diff, which takes long, only to report
		}
		if d := cmp.Diff(l.want[k], audited, ignoreRef); d != "" {
			return diverge("audit rows differ from the committed changes",
				"%s\ncommitted changes (shadow log):\n  %s\naudit rows:\n  %s\n(-committed +audited):\n%s",
				k, refs(l.want[k]), refs(audited), d)
		}
	}
	return nil
}

// checkShadow reads the whole shadow log through q and checks s, read
// after it, against it (see [shadowLog.check]).
func checkShadow(q *gorm.DB, s *snapshot, recorded recordedFunc) error {
	l := newShadowLog(recorded)
	if err := l.extend(q); err != nil {
		return err
	}
	return l.check(s)
}

func refs(cs []change) string {
	if len(cs) == 0 {
		return "(none)"
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Ref
	}
	return strings.Join(out, "\n  ")
}
