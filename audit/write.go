package audit

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"
)

// recorder collects the audit rows of one write statement and inserts them,
// in the statement's transaction, with one INSERT per batch of rows.
type recorder struct {
	p      *Plugin
	m      *model
	db     *gorm.DB
	ctx    context.Context
	action Action
	who    Audit // context-derived columns and created_at
	rows   []Audit
	// gated: only rows of enabled accounts are inserted, as decided by the
	// audit INSERT itself (Config.EnabledAccountsOnly).
	gated bool
}

// start checks that the statement can be audited and prepares its recorder.
// It runs before the write reaches the database, so that a refusal leaves
// nothing behind.
func (p *Plugin) start(db *gorm.DB, m *model, action Action) (*recorder, error) {
	if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); !inTx {
		return nil, &WriteError{Type: m.typeName, Action: action,
			Err: errNotInTransaction}
	}
	r := &recorder{p: p, m: m, db: db, ctx: db.Statement.Context, action: action}
	if hasActor := who(r.ctx, &r.who); !hasActor && p.cfg.RequireActor {
		return nil, ErrNoActor
	}
	r.who.CreatedAt = p.cfg.Now().UTC().Truncate(time.Millisecond)
	r.gated = p.cfg.EnabledAccountsOnly
	return r, nil
}

// add queues one audit row for record rv, of the recorder's action.
func (r *recorder) add(rv reflect.Value, changes Changes) {
	r.addAction(rv, r.action, changes)
}

// addAction queues one audit row for record rv.
func (r *recorder) addAction(rv reflect.Value, action Action, changes Changes) {
	a := r.who
	a.AccountID = r.m.accountOf(r.ctx, rv)
	a.AuditableType = r.m.typeName
	a.AuditableID = key(r.ctx, r.m.pk, rv)
	if r.m.assocField != nil {
		if id := key(r.ctx, r.m.assocField, rv); id != "" {
			a.AssociatedType, a.AssociatedID = r.m.assocType, id
		}
	}
	a.Action = action
	a.AuditedChanges = changes
	r.rows = append(r.rows, a)
}

// addSnapshots queues a row with every audited column for each record whose
// account is recorded: the changes of a create or a destroy. It reports
// false, having failed the statement, when a value cannot be encoded.
func (r *recorder) addSnapshots(recs []reflect.Value) bool {
	for _, rv := range recs {
		changes, err := r.m.snapshot(r.ctx, rv)
		if err != nil {
			r.fail(err)
			return false
		}
		r.add(rv, changes)
	}
	return true
}

// fail reports err as the statement's error, wrapped with what failed.
func (r *recorder) fail(err error) {
	if isVersionConflict(err) {
		err = fmt.Errorf("%w: %w", ErrVersionConflict, err)
	}
	_ = r.db.AddError(&WriteError{Type: r.m.typeName, Action: r.action, Err: err})
}

// isVersionConflict reports whether err is the unique index on a record's
// versions refusing a duplicate: PostgreSQL names the index, SQLite its
// columns.
func isVersionConflict(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "idx_audits_auditable_version") ||
		strings.Contains(msg, "audits.auditable_type, audits.auditable_id, audits.version")
}

// insertBatch bounds the rows of one INSERT: 16 parameters a row stays well
// under PostgreSQL's 65535 and SQLite's 32766 parameters per statement.
const insertBatch = 1000

const insertSQL = `INSERT INTO "audits" ("account_id","auditable_id","auditable_type","associated_id","associated_type",` +
	`"user_id","user_type","action","audited_changes","version","comment","remote_address","request_uuid","created_at","transaction_id") VALUES `

// flush writes the queued rows.
func (r *recorder) flush() {
	if len(r.rows) == 0 {
		return
	}
	tx := r.db.Session(&gorm.Session{NewDB: true, SkipHooks: true})
	for start := 0; start < len(r.rows); start += insertBatch {
		batch := r.rows[start:min(start+insertBatch, len(r.rows))]
		var sql strings.Builder
		args := make([]any, 0, 16*len(batch))
		err := writeInsert(&sql, func(v any) {
			sql.WriteByte('?')
			args = append(args, v)
		}, batch, r.p.postgres, r.gated)
		if err == nil {
			err = tx.Exec(sql.String(), args...).Error
		}
		if err != nil {
			r.fail(err)
			return
		}
	}
	r.rows = nil
}

// gatedColumns are the audits columns of insertSQL, as named by the rows of
// a gated INSERT (see writeInsert).
var gatedColumns = []string{"account_id", "auditable_id", "auditable_type", "associated_id", "associated_type",
	"user_id", "user_type", "action", "audited_changes", "version", "comment", "remote_address", "request_uuid",
	"created_at", "transaction_id"}

// writeInsert writes the INSERT of rows to w; bind writes the placeholder of
// one value and keeps the value. With gated, only the rows of enabled
// accounts are inserted, as the database decides in the same statement:
//
//	WITH "__audit_v" (...) AS (VALUES (...), ...)
//	INSERT INTO "audits" (...) SELECT ... FROM "__audit_v" WHERE EXISTS (<enabled account>)
func writeInsert(w interface{ WriteString(string) (int, error) }, bind func(any), rows []Audit, postgres, gated bool) error {
	// put binds a value of an audits column of PostgreSQL type typ: a
	// VALUES list that is not the INSERT's own gets no types from it.
	put := func(v any, typ string) {
		bind(v)
		if gated && postgres {
			w.WriteString("::" + typ)
		}
	}
	if gated {
		w.WriteString(`WITH "__audit_v" ("` + strings.Join(gatedColumns, `","`) + `") AS (VALUES `)
	} else {
		w.WriteString(insertSQL)
	}
	for i := range rows {
		a := &rows[i]
		changes, err := a.AuditedChanges.Value()
		if err != nil {
			return err
		}
		if i > 0 {
			w.WriteString(",(")
		} else {
			w.WriteString("(")
		}
		put(a.AccountID, "bigint")
		for _, v := range []any{a.AuditableID, a.AuditableType, a.AssociatedID, a.AssociatedType,
			a.UserID, a.UserType, string(a.Action)} {
			w.WriteString(",")
			put(v, "text")
		}
		w.WriteString(",")
		put(changes, "jsonb")
		// A record's next version is computed in the INSERT itself. Updates
		// and deletes lock the record's row before this runs, and the unique
		// index on (auditable_type, auditable_id, version) rejects any
		// duplicate that could still slip through, so versions are gapless
		// and unique.
		w.WriteString(`,(SELECT COALESCE(MAX("version"),0)+1 FROM "audits" WHERE "auditable_type" = `)
		bind(a.AuditableType)
		w.WriteString(` AND "auditable_id" = `)
		bind(a.AuditableID)
		w.WriteString(")")
		for _, v := range []any{a.Comment, a.RemoteAddress, a.RequestUUID} {
			w.WriteString(",")
			put(v, "text")
		}
		w.WriteString(",")
		put(a.CreatedAt, "timestamptz")
		if postgres {
			w.WriteString(",pg_current_xact_id()::text::bigint)")
		} else {
			w.WriteString(",0)")
		}
	}
	if gated {
		w.WriteString(`) ` + strings.TrimSuffix(insertSQL, "VALUES ") + `SELECT "__audit_v"."` +
			strings.Join(gatedColumns, `","__audit_v"."`) + `" FROM "__audit_v" WHERE ` +
			enabledAccountSQL(`"__audit_v"."account_id"`))
	}
	return nil
}
