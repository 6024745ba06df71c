// Command runbookservice is a runnable example of the library: a small JSON
// API for runbooks and their steps, audited with the audit plugin, with the
// runbook audit endpoint mounted for bot users and runbook revert over HTTP.
//
// Run it with no configuration to get a SQLite database file, a demo account
// with a runbook and some history, and two tokens: a user token for editing
// and a bot token for reading the audit log. On PostgreSQL the audit log is
// partitioned by month (audit.Partition at start), and the service creates
// the coming months' partitions at start and daily (audit.Maintain).
//
//	go run ./examples/runbookservice
//
// Flags (see -h):
//
//	-addr             address to listen on (default 127.0.0.1:8080)
//	-db               SQLite database file (default runbookservice.db)
//	-database-url     PostgreSQL URL; overrides -db (default $DATABASE_URL)
//	-demo-user-token  the demo user's token (default: a new random one)
//	-demo-bot-token   the demo bot's token (default: a new random one)
//	-read-header-timeout, -read-timeout, -write-timeout, -idle-timeout
//	                  how long a client may take to send a request's
//	                  headers, its whole request, how long a response may
//	                  take, and how long an idle keep-alive connection is
//	                  kept (defaults 5s, 30s, 60s, 120s)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/runbooks"
)

// config is the service's command line.
type config struct {
	addr        string
	sqlitePath  string
	databaseURL string
	userToken   string
	botToken    string
	timeouts    timeouts
}

// timeouts bound how long a client can hold a connection, so that slow or
// idle clients cannot exhaust the server.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultTimeouts = timeouts{readHeader: 5 * time.Second, read: 30 * time.Second, write: 60 * time.Second, idle: 120 * time.Second}

// newHTTPServer returns the server for handler, with every timeout set: a
// request whose headers or body trickle in, and a keep-alive connection
// left idle, are closed.
func newHTTPServer(handler http.Handler, t timeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runbookservice:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("runbookservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free port)")
	fs.StringVar(&cfg.sqlitePath, "db", "runbookservice.db", "SQLite database file, used unless -database-url is set")
	fs.StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"),
		"PostgreSQL URL such as postgres://user@host:5432/db (default $DATABASE_URL); overrides -db")
	fs.StringVar(&cfg.userToken, "demo-user-token", "",
		"token of the demo user, who edits runbooks (must start with \""+httpapi.TokenPrefix+"\"; default: a new random token)")
	fs.StringVar(&cfg.botToken, "demo-bot-token", "",
		"token of the demo bot, who reads the audit log (must start with \""+httpapi.TokenPrefix+"\"; default: a new random token)")
	fs.DurationVar(&cfg.timeouts.readHeader, "read-header-timeout", defaultTimeouts.readHeader, "time a client has to send a request's headers")
	fs.DurationVar(&cfg.timeouts.read, "read-timeout", defaultTimeouts.read, "time a client has to send a whole request, body included")
	fs.DurationVar(&cfg.timeouts.write, "write-timeout", defaultTimeouts.write, "time from the end of a request's headers to the end of its response")
	fs.DurationVar(&cfg.timeouts.idle, "idle-timeout", defaultTimeouts.idle, "time an idle keep-alive connection is kept open")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: runbookservice [flags]\n\n"+
			"Serves an audited runbook API and the runbook audit endpoint, with a seeded demo account.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	for _, d := range []time.Duration{cfg.timeouts.readHeader, cfg.timeouts.read, cfg.timeouts.write, cfg.timeouts.idle} {
		if d <= 0 {
			fmt.Fprintln(stderr, "runbookservice: timeouts must be positive")
			return config{}, errors.New("timeouts must be positive")
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "runbookservice: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return config{}, errors.New("unexpected arguments")
	}
	return cfg, nil
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, cfg config, stdout io.Writer) error {
	db, where, err := openDB(cfg)
	if err != nil {
		return err
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	if err := db.Use(audit.New(audit.Config{Models: runbooks.Models(), EnabledAccountsOnly: true})); err != nil {
		return err
	}
	onPostgres := cfg.databaseURL != ""
	if onPostgres {
		// The audit log is partitioned by month: created so on a new
		// database, converted once on an existing one.
		if err := audit.Partition(ctx, db, nil); err != nil {
			return err
		}
	}
	for _, migrate := range []func(context.Context, *gorm.DB) error{runbooks.Migrate, audit.Migrate, httpapi.Migrate} {
		if err := migrate(ctx, db); err != nil {
			return err
		}
	}
	demo, err := seed(ctx, db, cfg.userToken, cfg.botToken)
	if err != nil {
		return fmt.Errorf("seed the demo account: %w", err)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if onPostgres {
		// Migrate has created the coming months' partitions; keep creating
		// them while the service runs, and stop with it.
		maintainCtx, stopMaintaining := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			maintainPartitions(maintainCtx, maintainEvery, log, func(ctx context.Context) error {
				return audit.Maintain(ctx, db, nil)
			})
		}()
		defer func() { stopMaintaining(); <-done }()
	}
	handler, err := newServer(db, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := newHTTPServer(handler, cfg.timeouts, log)
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "runbookservice listening on %s (database: %s)\n", base, where)
	fmt.Fprintf(stdout, "demo user token (edits runbooks):  %s\n", demo.userToken)
	fmt.Fprintf(stdout, "demo bot token (reads audits):     %s\n", demo.botToken)
	fmt.Fprintf(stdout, "demo runbook:                      %s\n", demo.runbookID)
	fmt.Fprintf(stdout, "try: curl -H 'Authorization: Bearer %s' '%s/v1/runbook_audits?runbook_id=%s&sort=asc'\n",
		demo.botToken, base, demo.runbookID)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "runbookservice: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(stdout, "runbookservice: stopped")
	return nil
}

// maintainEvery is how often the service creates the audits table's
// coming partitions: daily, so that a failure has weeks to be noticed
// before the month it prepares begins.
const maintainEvery = 24 * time.Hour

// maintainPartitions runs maintain every interval until ctx is done,
// logging its failures.
func maintainPartitions(ctx context.Context, every time.Duration, log *slog.Logger, maintain func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := maintain(ctx); err != nil && ctx.Err() == nil {
				log.Error("create the audit log's coming partitions", "err", err)
			}
		}
	}
}

// openDB opens PostgreSQL when a URL is given, else the SQLite file.
func openDB(cfg config) (*gorm.DB, string, error) {
	gcfg := &gorm.Config{Logger: logger.Default.LogMode(logger.Warn)}
	if cfg.databaseURL != "" {
		db, err := gorm.Open(postgres.Open(cfg.databaseURL), gcfg)
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return db, "PostgreSQL", nil
	}
	// One connection and immediate transactions: SQLite has one writer, and
	// a transaction that reads before it writes must hold the write lock
	// from its start.
	dsn := "file:" + cfg.sqlitePath + "?_foreign_keys=1&_busy_timeout=5000&_txlock=immediate&_journal_mode=WAL"
	db, err := gorm.Open(sqlite.Open(dsn), gcfg)
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite %s: %w", cfg.sqlitePath, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, "", err
	}
	sqlDB.SetMaxOpenConns(1)
	return db, "SQLite " + cfg.sqlitePath, nil
}
