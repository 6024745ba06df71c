package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi/internal/auditlist"
	"github.com/gormaudit/gormaudit/runbooks"
)

// Query-string limits that do not depend on [Options].
const (
	// maxQueryLen bounds the raw query string. With unknown and repeated
	// parameters rejected, a valid query is far shorter.
	maxQueryLen = 4096
	// maxValueLen bounds one value: the audits table's text columns hold
	// at most 255 characters, so a longer value cannot match anything.
	maxValueLen = 255
	// maxPage bounds page before the offset check, so that page*per_page
	// cannot overflow.
	maxPage = 1 << 30
)

// ParamError reports an invalid query parameter. The handler answers it
// with 400 and a JSON body naming Param.
type ParamError struct {
	// Param is the offending parameter's name, or "query" for a problem
	// with the query string as a whole.
	Param string
	// Reason says what is wrong, for a person to read.
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("httpapi: parameter %s: %s", e.Param, e.Reason)
}

func paramErr(param, format string, args ...any) error {
	return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)}
}

// query is a parsed, validated request. Exactly one of the page mode
// (Page, Desc) and the cursor mode (After != nil or AfterID != nil) is in
// effect: Polling reports which.
type query struct {
	Page    int
	PerPage int
	Desc    bool

	auditlist.Filter // AuditableType "" = both types

	After   *auditlist.Position // from cursor
	AfterID *int64              // from after_id, resolved against the database
}

// Polling reports whether the query reads the polling stream.
func (q *query) Polling() bool { return q.After != nil || q.AfterID != nil }

// limits are the knobs of [Options] that validation depends on.
type limits struct {
	defaultPerPage int
	maxPerPage     int
	maxOffset      int
	// defaultType is the auditable_type of a page read that names no
	// type, record or runbook; "" for both types.
	defaultType string
	// strict rejects unknown parameters instead of ignoring them.
	strict bool
}

var knownParams = map[string]bool{
	"page": true, "per_page": true, "sort": true,
	"auditable_type": true, "auditable_id": true, "runbook_id": true,
	"user_id": true, "action": true, "since": true, "until": true,
	"after_id": true, "cursor": true,
}

// parseQuery validates a raw query string. Every failure is a *ParamError.
func parseQuery(raw string, lim limits) (query, error) {
	seen, err := splitQuery(raw, lim.strict)
	if err != nil {
		return query{}, err
	}
	q := query{PerPage: lim.defaultPerPage, Desc: true}
	if err := q.parseFilters(seen, lim); err != nil {
		return query{}, err
	}
	if err := q.parseMode(seen, lim); err != nil {
		return query{}, err
	}
	return q, nil
}

// splitQuery returns the known parameters of a raw query string by name.
// It parses by hand rather than with url.ParseQuery so that a repeated
// parameter is an error instead of a silently ignored value, and so that
// errors can name the parameter. Unknown parameters are ignored, or
// rejected when strict.
func splitQuery(raw string, strict bool) (map[string]string, error) {
	if len(raw) > maxQueryLen {
		return nil, paramErr("query", "query string longer than %d bytes", maxQueryLen)
	}
	seen := map[string]string{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || !utf8.ValidString(name) || name == "" {
			return nil, paramErr("query", "malformed parameter name %q", shown(k))
		}
		if !knownParams[name] {
			if !strict {
				// As the hosted endpoint does: a client may send
				// parameters of a newer API version.
				continue
			}
			// The name is echoed in the error and the request log: a
			// token pasted into the query string must not be.
			return nil, paramErr(shown(name), "unknown parameter")
		}
		if _, dup := seen[name]; dup {
			return nil, paramErr(name, "given more than once")
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, paramErr(name, "malformed percent-encoding")
		}
		if err := checkValue(name, value); err != nil {
			return nil, err
		}
		seen[name] = value
	}
	return seen, nil
}

// checkValue rejects a parameter value that no column can match.
func checkValue(name, value string) error {
	switch {
	case value == "":
		return paramErr(name, "must not be empty")
	case len(value) > maxValueLen:
		return paramErr(name, "longer than %d bytes", maxValueLen)
	case !utf8.ValidString(value) || strings.ContainsFunc(value, isControl):
		return paramErr(name, "must be UTF-8 text without control characters")
	}
	return nil
}

// parseFilters reads per_page, sort and the row filters.
func (q *query) parseFilters(seen map[string]string, lim limits) error {
	var err error
	if v, ok := seen["per_page"]; ok {
		if q.PerPage, err = intParam("per_page", v, 1, int64(lim.maxPerPage)); err != nil {
			return err
		}
	}
	if v, ok := seen["sort"]; ok {
		switch strings.ToLower(v) {
		case "asc":
			q.Desc = false
		case "desc":
		default:
			return paramErr("sort", `must be "asc" or "desc"`)
		}
	}
	if v, ok := seen["auditable_type"]; ok {
		if v != runbooks.TypeStep && v != runbooks.TypeRunbook {
			return paramErr("auditable_type", "must be %q or %q", runbooks.TypeStep, runbooks.TypeRunbook)
		}
		q.AuditableType = v
	}
	q.AuditableID = seen["auditable_id"]
	q.RunbookID = seen["runbook_id"]
	q.UserID = seen["user_id"]
	if v, ok := seen["action"]; ok {
		if q.Action = audit.Action(v); !q.Action.Valid() {
			return paramErr("action", `must be "create", "update" or "destroy"`)
		}
	}
	for _, p := range []struct {
		name  string
		bound **time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		name := p.name
		v, ok := seen[name]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return paramErr(name, "must be an RFC 3339 time such as 2022-04-26T19:34:32.889Z")
		}
		// An offset can carry a time written in year 0000 or 9999 out of
		// the years RFC 3339 can write once in UTC.
		if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 {
			return paramErr(name, "must lie between the years 0001 and 9999 in UTC")
		}
		*p.bound = &t
	}
	if q.Since != nil && q.Until != nil && !q.Since.Before(*q.Until) {
		return paramErr("until", "must be after since")
	}
	return nil
}

// parseMode reads the mode: page (page, sort) or polling (after_id or
// cursor, ascending).
func (q *query) parseMode(seen map[string]string, lim limits) error {
	if v, ok := seen["after_id"]; ok {
		if _, both := seen["cursor"]; both {
			return paramErr("cursor", "give either cursor or after_id, not both")
		}
		n, err := intParam("after_id", v, 0, 1<<62)
		if err != nil {
			return err
		}
		id := int64(n)
		q.AfterID = &id
	}
	if v, ok := seen["cursor"]; ok {
		p, err := decodeCursor(v)
		if err != nil {
			return paramErr("cursor", "is not a cursor returned by this endpoint")
		}
		q.After = &p
	}
	if q.Polling() {
		mode := "cursor"
		if q.AfterID != nil {
			mode = "after_id"
		}
		if _, ok := seen["page"]; ok {
			return paramErr("page", "cannot be combined with %s: polling has no pages", mode)
		}
		if q.Desc && seen["sort"] != "" {
			return paramErr("sort", "must be asc (or absent) with %s: polling reads oldest first", mode)
		}
		q.Desc = false
		q.Page = 0
		return nil
	}
	q.Page = 1
	if q.AuditableType == "" && q.AuditableID == "" && q.RunbookID == "" {
		q.AuditableType = lim.defaultType
	}
	if v, ok := seen["page"]; ok {
		var err error
		if q.Page, err = intParam("page", v, 1, maxPage); err != nil {
			return err
		}
		if offset := (q.Page - 1) * q.PerPage; offset > lim.maxOffset {
			return paramErr("page", "reads past the first %d rows; poll with after_id=0 or cursor to read deeper", lim.maxOffset)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// intParam parses a decimal integer in [lo, hi]: digits only, no sign, no
// leading zeros beyond "0" itself.
func intParam(name, v string, lo, hi int64) (int, error) {
	if v == "" || len(v) > 19 || strings.TrimLeft(v, "0123456789") != "" || (len(v) > 1 && v[0] == '0') {
		return 0, paramErr(name, "must be an integer from %d to %d", lo, hi)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, paramErr(name, "must be an integer from %d to %d", lo, hi)
	}
	return int(n), nil
}

// shown is how an unknown or malformed parameter name appears in errors and
// logs: clipped, and redacted when it looks like one of our tokens.
func shown(s string) string {
	if strings.HasPrefix(s, TokenPrefix) {
		return TokenPrefix + "…(redacted)"
	}
	return clip(s)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Cursors are "c1" followed by the unpadded base64url encoding of the
// position's two big-endian int64s. Clients must treat them as opaque.
const cursorPrefix = "c1"

func encodeCursor(p auditlist.Position) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(p.TxID))
	binary.BigEndian.PutUint64(b[8:], uint64(p.ID))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (auditlist.Position, error) {
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	if !ok {
		return auditlist.Position{}, fmt.Errorf("httpapi: cursor has no %q prefix", cursorPrefix)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != 16 {
		return auditlist.Position{}, fmt.Errorf("httpapi: malformed cursor")
	}
	p := auditlist.Position{TxID: int64(binary.BigEndian.Uint64(b[:8])), ID: int64(binary.BigEndian.Uint64(b[8:]))}
	if p.ID < 0 {
		return auditlist.Position{}, fmt.Errorf("httpapi: malformed cursor")
	}
	return p, nil
}
