package audit

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
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
	// own is where the change's own part of a fused statement lies in its
	// text, in characters from 1 (see fusedError).
	own struct{ from, to int }
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
	_ = r.db.AddError(&WriteError{Type: r.m.typeName, Action: r.action, Err: err})
}

// insertError wraps err, an error of a statement that took versions or
// inserted audit rows, with the sentinel that says what it means:
//
//   - ErrVersionConflict when another transaction recorded a version of
//     the record first: a serialization failure (in a REPEATABLE READ or
//     SERIALIZABLE transaction, the record's version counter moved after
//     the snapshot), or the unique index on a record's versions refusing a
//     duplicate. PostgreSQL names the index; SQLite names none, but the
//     only unique index an audit INSERT can violate is that one, since the
//     database assigns the ids;
//   - ErrNoPartition when the partitioned audits table has no partition
//     for the rows' created_at.
func insertError(err error) error {
	e, ok := dialect.Classify(err)
	switch {
	case !ok:
		return err
	case e.Kind == dialect.KindSerializationFailure,
		e.Kind == dialect.KindUniqueViolation && (e.Constraint == auditsql.VersionIndex || e.Constraint == ""):
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	case e.Kind == dialect.KindCheckViolation && e.Table == auditsql.Table:
		return fmt.Errorf("%w: %w", ErrNoPartition, err)
	}
	return err
}

// insertBatch bounds the rows of one INSERT: 16 parameters a row stays well
// under PostgreSQL's 65535 and SQLite's 32766 parameters per statement.
const insertBatch = 1000

// flush writes the queued rows.
func (r *recorder) flush() {
	if len(r.rows) == 0 {
		return
	}
	write := r.insertBatches
	if r.p.dialect.InProcess() {
		write = r.insertEach
	}
	if write() {
		r.rows = nil
	}
}

// insertBatches writes the queued rows in batches of insertBatch, two
// statements a batch: their versions (auditsql.TakeVersions), then the
// rows. It reports false, having failed the statement, on an error.
func (r *recorder) insertBatches() bool {
	tx := r.db.Session(&gorm.Session{NewDB: true, SkipHooks: true})
	rows := make([]auditsql.Row, 0, min(len(r.rows), insertBatch))
	for start := 0; start < len(r.rows); start += insertBatch {
		rows = rows[:0]
		for i := range r.rows[start:min(start+insertBatch, len(r.rows))] {
			row, err := insertRow(&r.rows[start+i])
			if err != nil {
				r.fail(err)
				return false
			}
			rows = append(rows, row)
		}
		kept, err := auditsql.TakeVersions(tx, r.p.dialect, rows, r.gated)
		if err != nil {
			r.fail(insertError(err))
			return false
		}
		if len(kept) == 0 {
			continue
		}
		sql, args := auditsql.Insert(r.p.dialect, kept)
		if err := tx.Exec(sql, args...).Error; err != nil {
			r.fail(insertError(err))
			return false
		}
	}
	return true
}

// insertEach writes the queued rows one at a time, each with two prepared
// statements (see dialect.InProcess): its version (auditsql.TakeVersion),
// then the row, which reads the version taken (auditsql.InsertTaken). It
// reports false, having failed the statement, on an error.
func (r *recorder) insertEach() bool {
	pool := r.db.Statement.ConnPool
	for i := range r.rows {
		row, err := insertRow(&r.rows[i])
		if err != nil {
			r.fail(err)
			return false
		}
		args := []any{row.AuditableType, row.AuditableID}
		if r.gated {
			args = append(args, row.AccountID)
		}
		res, err := r.p.prepared.exec(r.ctx, pool, r.p.eachSQL.take, args...)
		var taken int64
		if err == nil {
			taken, err = res.RowsAffected()
		}
		if err == nil && taken > 0 { // none: the gate left the account out
			_, err = r.p.prepared.exec(r.ctx, pool, r.p.eachSQL.insert, row.TakenArgs()...)
		}
		if err != nil {
			r.fail(insertError(err))
			return false
		}
	}
	return true
}

// insertRow is the row auditsql inserts for a.
func insertRow(a *Audit) (auditsql.Row, error) {
	changes, err := a.AuditedChanges.Value()
	if err != nil {
		return auditsql.Row{}, err
	}
	return auditsql.Row{AccountID: a.AccountID, AuditableID: a.AuditableID, AuditableType: a.AuditableType,
		AssociatedID: a.AssociatedID, AssociatedType: a.AssociatedType, UserID: a.UserID, UserType: a.UserType,
		Action: string(a.Action), Changes: changes, Comment: a.Comment, RemoteAddress: a.RemoteAddress,
		RequestUUID: a.RequestUUID, CreatedAt: a.CreatedAt}, nil
}

// recordUpdate queues the audit row of one record changed from old to new
// (an update, or a revert's re-insert), refusing a change of account. It
// reports false, having failed the statement, on an error.
func (r *recorder) recordUpdate(old, new reflect.Value, action Action) bool {
	if err := r.m.checkSameRecord(r.ctx, old, new); err != nil {
		r.fail(err)
		return false
	}
	changes, err := r.m.diff(r.ctx, old, new)
	if err != nil {
		r.fail(err)
		return false
	}
	if len(changes) > 0 {
		r.addAction(new, action, changes)
	}
	return true
}
