package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Options configures a [Handler]. The zero value, like a nil *Options, means
// every default.
type Options struct {
	// Authenticator identifies callers. Defaults to
	// [NewTokenAuthenticator] on the handler's database: bot tokens issued
	// with [IssueToken].
	Authenticator Authenticator

	// Logger receives one record per request (method, status, account,
	// duration, and the error of failed requests). It never receives
	// credentials. Defaults to slog.Default().
	Logger *slog.Logger

	// DefaultPerPage is the page size when the request gives no per_page.
	// Defaults to 20.
	DefaultPerPage int

	// MaxPerPage is the largest per_page accepted. Defaults to 100.
	MaxPerPage int

	// MaxOffset bounds how deep page-numbered reads go: (page-1)*per_page
	// may not exceed it, because an OFFSET costs as many rows as it skips.
	// Deeper reads use the polling cursor, whose cost does not grow with
	// depth. Defaults to 100,000.
	MaxOffset int

	// CountLimit bounds the work of counting for pagination: the count
	// stops at CountLimit matching rows, and when there are more the
	// response reports count = CountLimit with count_exact = false.
	// Defaults to 10,000.
	CountLimit int

	// DefaultAuditableType is the type of the rows a page read returns
	// when it names no auditable_type, auditable_id or runbook_id.
	// Defaults to "Runbooks::Step", as on the hosted endpoint, whose SDKs
	// rely on it; [AllAuditableTypes] returns both types. The polling
	// stream (after_id, cursor) is not narrowed by it: without
	// auditable_type it carries both types, so that a watcher misses
	// nothing.
	DefaultAuditableType string

	// StrictParameters answers unknown query parameters with 400. Defaults
	// to false: they are ignored, as the hosted endpoint ignores them, so
	// that clients of a newer API version keep working. Known parameters
	// are always validated.
	StrictParameters bool

	// MaxPageBytes bounds the encoded rows of one response. A page or poll
	// holds as many rows, up to per_page, as fit (and always at least one
	// row, however large), so it may hold fewer than per_page rows; see
	// the package documentation, "Pages", for how to read the rest.
	// Defaults to 1 MiB.
	MaxPageBytes int

	// ReadClauses, when set, makes each request read the audit log in one
	// read-only REPEATABLE READ transaction begun on
	// db.Clauses(ReadClauses...), so that a page and its count, or a poll,
	// come from one snapshot of one server. With gorm's dbresolver plugin
	// registered on db, []clause.Expression{dbresolver.Read} begins it on a
	// replica: polling keeps its guarantees there (see the package
	// documentation, "Reading from a replica"), and an after_id the replica
	// has not replayed yet is looked up on the primary. Defaults to none:
	// each statement runs where db sends it.
	ReadClauses []clause.Expression
}

// AllAuditableTypes, as [Options.DefaultAuditableType], makes page reads
// without a type, record or runbook filter return both types.
const AllAuditableTypes = "*"

func (o *Options) withDefaults(db *gorm.DB) (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Authenticator == nil {
		v.Authenticator = NewTokenAuthenticator(db)
	}
	if v.Logger == nil {
		v.Logger = slog.Default()
	}
	if v.MaxPerPage == 0 {
		v.MaxPerPage = 100
	}
	if v.DefaultPerPage == 0 {
		v.DefaultPerPage = min(20, v.MaxPerPage)
	}
	if v.MaxOffset == 0 {
		v.MaxOffset = 100_000
	}
	if v.CountLimit == 0 {
		v.CountLimit = 10_000
	}
	if v.DefaultAuditableType == "" {
		v.DefaultAuditableType = runbooks.TypeStep
	}
	if v.MaxPageBytes == 0 {
		v.MaxPageBytes = 1 << 20
	}
	switch {
	case v.MaxPerPage < 1 || v.MaxPerPage > 1000:
		return v, fmt.Errorf("httpapi: Options.MaxPerPage must be from 1 to 1000, not %d", v.MaxPerPage)
	case v.DefaultPerPage < 1 || v.DefaultPerPage > v.MaxPerPage:
		return v, fmt.Errorf("httpapi: Options.DefaultPerPage must be from 1 to MaxPerPage (%d), not %d", v.MaxPerPage, v.DefaultPerPage)
	case v.MaxOffset < 0:
		return v, fmt.Errorf("httpapi: Options.MaxOffset must not be negative, not %d", v.MaxOffset)
	case v.CountLimit < 1:
		return v, fmt.Errorf("httpapi: Options.CountLimit must be positive, not %d", v.CountLimit)
	case v.DefaultAuditableType != AllAuditableTypes && !slices.Contains(auditlist.Types, v.DefaultAuditableType):
		return v, fmt.Errorf("httpapi: Options.DefaultAuditableType must be %q, %q or AllAuditableTypes, not %q",
			auditlist.Types[0], auditlist.Types[1], v.DefaultAuditableType)
	case v.MaxPageBytes < 0:
		return v, fmt.Errorf("httpapi: Options.MaxPageBytes must be positive, not %d", v.MaxPageBytes)
	}
	return v, nil
}

// Handler serves the runbook audit endpoint. Create it with [NewHandler] and
// mount it wherever the service likes; it owns no server and no routes
// beyond its own path, plus that path followed by "/openapi.json" when the
// mux routes it there.
type Handler struct {
	db         *gorm.DB
	opts       Options
	lim        limits
	outOfOrder bool // the database commits out of order: poll below the oldest running transaction
	log        *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the endpoint reading the audit log in db. A nil opts
// means the defaults. db must hold the tables of audit.Migrate and, for the
// default authenticator, of [Migrate].
func NewHandler(db *gorm.DB, opts *Options) (*Handler, error) {
	if db == nil {
		return nil, errors.New("httpapi: NewHandler: db is nil")
	}
	o, err := opts.withDefaults(db)
	if err != nil {
		return nil, err
	}
	pg, err := auditlist.OutOfOrder(db, "httpapi: NewHandler")
	if err != nil {
		return nil, err
	}
	lim := limits{defaultPerPage: o.DefaultPerPage, maxPerPage: o.MaxPerPage, maxOffset: o.MaxOffset,
		defaultType: o.DefaultAuditableType, strict: o.StrictParameters}
	if lim.defaultType == AllAuditableTypes {
		lim.defaultType = ""
	}
	return &Handler{db: db, opts: o, outOfOrder: pg, log: o.Logger, lim: lim}, nil
}

// OpenAPIPath is what the handler serves its OpenAPI document at, after the
// path it is mounted at.
const OpenAPIPath = "/openapi.json"

// Mount routes path and path + [OpenAPIPath] of mux to h, so that the
// endpoint and its OpenAPI document are served together; call it once per
// path the endpoint is reachable at.
func (h *Handler) Mount(mux *http.ServeMux, path string) {
	path = strings.TrimSuffix(path, "/")
	mux.Handle(path, h)
	mux.Handle(path+OpenAPIPath, h)
}

// listResponse is the 200 body. Rows are encoded by the list, which
// bounds their total size.
type listResponse struct {
	Data       []json.RawMessage   `json:"data"`
	Pagination *apitype.Pagination `json:"pagination,omitempty"`
	Cursor     *apitype.Cursor     `json:"cursor,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	attrs, err := h.serve(rec, r)
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	attrs = append(attrs,
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "httpapi: request", attrs...)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) ([]slog.Attr, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "only GET and HEAD are allowed", "")
		return nil, nil
	}
	if strings.HasSuffix(r.URL.Path, OpenAPIPath) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(openAPIDoc)
		return nil, nil
	}
	p, err := h.opts.Authenticator.Authenticate(r)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runbook_audits"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated",
				"a valid bot token is required: Authorization: <token> or Authorization: Bearer <token>", "")
			return nil, err
		}
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
		return nil, err
	}
	attrs := []slog.Attr{slog.Int64("account_id", p.AccountID), slog.String("principal", p.ID)}
	if !p.IsBot() {
		writeError(w, http.StatusForbidden, "bot_required", "only bot users can read the runbook audit log", "")
		return attrs, nil
	}
	st, err := audit.Account(r.Context(), h.db, p.AccountID)
	switch {
	case errors.Is(err, audit.ErrAccountNotFound) || (err == nil && !st.Enabled):
		writeError(w, http.StatusForbidden, "audit_not_enabled",
			"the runbook audit log must be enabled for this account before it can be read", "")
		return attrs, nil
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
		return attrs, err
	}
	q, err := parseQuery(r.URL.RawQuery, h.lim)
	if err != nil {
		var pe *ParamError
		if errors.As(err, &pe) {
			writeError(w, http.StatusBadRequest, "invalid_parameter", pe.Reason, pe.Param)
			return attrs, err
		}
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
		return attrs, err
	}
	pg, err := h.list(r.Context(), &q, p.AccountID)
	if errors.Is(err, auditlist.ErrNotInLog) {
		writeError(w, http.StatusBadRequest, "invalid_parameter",
			"is not the id of a row of this account's log", "after_id")
		return attrs, err
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
		return attrs, err
	}
	writeJSON(w, http.StatusOK, h.envelope(&q, pg))
	return attrs, nil
}

func (h *Handler) envelope(q *query, pg *page) listResponse {
	resp := listResponse{Data: pg.rows}
	if resp.Data == nil {
		resp.Data = []json.RawMessage{}
	}
	if q.Polling() {
		c := &apitype.Cursor{Next: encodeCursor(pg.next), More: pg.more, Items: len(pg.rows)}
		if pg.next.ID != 0 {
			id := pg.next.ID
			c.NextAfterID = &id
		}
		resp.Cursor = c
		return resp
	}
	pages := max(1, (pg.count+int64(q.PerPage)-1)/int64(q.PerPage))
	pa := &apitype.Pagination{Count: pg.count, CountExact: pg.exact, Page: q.Page, PerPage: q.PerPage, Items: len(pg.rows),
		Pages: pages, Last: pages, Truncated: pg.truncated}
	if q.Page > 1 {
		prev := min(q.Page-1, int(pages))
		pa.Prev = &prev
	}
	if pg.more {
		next := q.Page + 1
		pa.Next = &next
	}
	resp.Pagination = pa
	return resp
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
