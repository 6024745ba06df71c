package audit

import (
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/internal/auditsql"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// PluginName is the name the plugin registers under in gorm.Config.Plugins.
const PluginName = "gormaudit:audit"

// Plugin is the gorm plugin that writes audit rows. Create it with [New] and
// register it with db.Use.
type Plugin struct {
	cfg         Config
	models      map[reflect.Type]*model
	byType      map[string]*model
	tables      map[string]*model
	dialect     dialect.Dialect
	initialized atomic.Bool
	// prepared keeps the plugin's own statements prepared where the
	// database would parse them anew every time (dialect.InProcess).
	prepared *preparedCache
	// eachSQL is the text of the statements that write one audit row
	// there (recorder.insertEach).
	eachSQL struct{ take, insert string }
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
	if p.dialect.InProcess() {
		p.prepared = newPreparedCache(db)
		p.eachSQL.take = auditsql.TakeVersion(p.dialect, p.cfg.EnabledAccountsOnly)
		p.eachSQL.insert = auditsql.InsertTakenSQL(p.dialect)
	}
	return p.registerCallbacks(db)
}

// capture is how the plugin audits one kind of write, in place of gorm's
// own callback for it.
type capture struct {
	// callback is gorm's callback replaced, such as "gorm:create".
	callback string
	action   Action
	// refuse names why a statement on an audited model cannot be
	// audited, before anything is written.
	refuse func(*gorm.Statement) error
	// run performs an audited model's write; gormOwn is gorm's callback.
	run func(db *gorm.DB, r *recorder, gormOwn func(*gorm.DB))
}

// registerCallbacks replaces gorm's create, update and delete callbacks,
// one capture each: the plugin runs an audited model's write itself (so
// that its audit rows come from the rows as written, in the same statement
// on PostgreSQL) and hands every other statement to gorm's own callback
// unchanged.
func (p *Plugin) registerCallbacks(db *gorm.DB) error {
	for _, c := range []struct {
		processor interface {
			Get(string) func(*gorm.DB)
			Replace(string, func(*gorm.DB)) error
		}
		capture
	}{
		{db.Callback().Create(), capture{"gorm:create", ActionCreate, refuseCreate, p.auditedCreate}},
		{db.Callback().Update(), capture{"gorm:update", ActionUpdate, refuseBuiltSQL, p.auditedUpdate}},
		{db.Callback().Delete(), capture{"gorm:delete", ActionDestroy, refuseBuiltSQL, p.auditedDelete}},
	} {
		own := c.processor.Get(c.callback)
		if own == nil {
			return &ConfigError{Field: "Dialector", Reason: c.callback + " callback is missing"}
		}
		if err := c.processor.Replace(c.callback, p.wrap(c.capture, own)); err != nil {
			return fmt.Errorf("audit: replace %s callback: %w", c.callback, err)
		}
	}
	return nil
}

// wrap returns the callback that stands in for gorm's own callback own:
// statements that are not audited go to own unchanged, writes that reach
// an audited table in a way that cannot be audited fail, and an audited
// model's write is prepared (start) and run by c.
func (p *Plugin) wrap(c capture, own func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		m, refused := p.target(db, c.action)
		if refused {
			return
		}
		if m == nil {
			own(db)
			return
		}
		if err := c.refuse(db.Statement); err != nil {
			_ = db.AddError(&WriteError{Type: m.typeName, Action: c.action, Err: err})
			return
		}
		r, err := p.start(db, m, c.action)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		c.run(db, r, own)
	}
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
