// Package httpapi serves the runbook audit log over HTTP: an embeddable
// handler that lets an account's bot users read their own account's audit
// rows, by page or by polling for what changed since their last look.
//
// # Mounting
//
// [NewHandler] returns an http.Handler; mount it wherever the service likes.
// [Handler.Mount] routes a path and its OpenAPI document:
//
//	h, err := httpapi.NewHandler(db, nil) // nil: the defaults
//	if err != nil { ... }
//	h.Mount(mux, "/v1/runbook_audits")     // and /v1/runbook_audits/openapi.json
//	h.Mount(mux, "/runbookaudit")
//
// The database needs the tables of audit.Migrate and, for the default bot
// token authentication, of [Migrate]. GET and HEAD are served (other
// methods get 405 with "Allow: GET, HEAD"). The OpenAPI 3 document of the
// endpoint is [OpenAPI]; the handler serves it, without authentication, at
// its path followed by [OpenAPIPath].
//
// # Who may read
//
// Every request is authenticated by [Options.Authenticator]. The default
// reads the token from "Authorization: <token>" (the API-key form the
// hosted endpoint's SDKs send) or "Authorization: Bearer <token>" (the
// scheme in any case, then any run of spaces) and checks bot tokens made by
// [IssueToken] (listed with [ListTokens], revoked with [RevokeToken]). Only
// a SHA-256 hash of a token is stored; a token is shown once, when issued.
// Missing, unknown and revoked tokens get 401 with a WWW-Authenticate
// header; a token of a principal that is not a bot ([PrincipalBot]) gets
// 403, and so does an account whose audit log is not enabled
// (audit.EnableAccount). Every query is restricted to the caller's account:
// no parameter can widen it.
//
// # Pages
//
// Without cursor or after_id, the response is one page:
//
//	{"data": [rows], "pagination": {"count", "count_exact", "page", "per_page", "items", "pages", "last", "prev", "next"}}
//
// ordered by created_at then id (sort=desc by default, or asc, in any
// case), filtered by auditable_type, auditable_id, runbook_id (the
// runbook's rows and all of its steps' rows), user_id, action, since
// (inclusive) and until (exclusive). As on the hosted endpoint, a page read
// without auditable_type, auditable_id or runbook_id returns Runbooks::Step
// rows only ([Options.DefaultAuditableType] changes that). per_page
// defaults to 20, at most 100. Counting stops at [Options.CountLimit] rows
// so that a large account costs no more than a small one: above it, count
// is the limit and count_exact is false. Page numbers reach
// [Options.MaxOffset] rows deep; read deeper by polling.
//
// A response holds at most [Options.MaxPageBytes] of encoded rows (1 MiB by
// default; always at least one row), so a page may hold fewer than
// per_page rows. Page numbers keep their per_page meaning, so that count,
// pages and next stay exact; a page cut short says so with
// "truncated": true and its items, and the rows cut from it are on no other
// page: read them as pages of one row, which are never cut (page
// (page-1)*per_page+items+1 and on, per_page=1; the Go client's All does), or
// poll, whose cursor resumes right after the last row a response held.
//
// since is inclusive: a client polling by timestamp with the created_at of
// the last row it saw gets that row again (and may miss rows that commit
// late with an earlier created_at). To learn what changed, poll with the
// cursor.
//
// # Polling
//
// To learn what changed since the last look, start with after_id=0 and send
// the response's cursor.next as cursor on every later request:
//
//	GET /v1/runbook_audits?after_id=0        → {"data": [...], "cursor": {"next": "c1…", "more": true, ...}}
//	GET /v1/runbook_audits?cursor=c1…
//
// Rows come oldest first and a row is never skipped nor returned twice,
// even while writes go on. Row ids do not give that guarantee on
// PostgreSQL: ids are taken when a row is inserted, but become visible when
// its transaction commits, so a reader that has seen id 51 may see id 50
// later. The polling stream is therefore ordered by (writing transaction
// id, row id) and only hands out rows of transactions older than the oldest
// transaction still running (pg_snapshot_xmin): any row that commits later
// sorts after everything already handed out. The cost is latency: a
// transaction that stays open holds back the rows written after it began,
// anywhere on the server, until it ends. On SQLite, which has a single
// writer, ids commit in order and the stream is the id order.
//
// after_id=N resumes after row N in that stream, for clients that keep the
// last id they saw (cursor.next_after_id). N must be a row of the caller's
// account, or 0 for the start. Resuming after an id that the stream handed
// out skips nothing: later rows usually have larger ids, but a row with a
// smaller id that committed later is returned too, not lost. An id learnt
// from a page instead may miss rows of transactions that were still open
// when the page was read.
// The filters apply to polling as well; page and sort=desc do not.
//
// # Reading from a replica
//
// The audit log can be read from PostgreSQL streaming replicas (hot
// standbys) through gorm's dbresolver plugin, with every guarantee of
// polling kept. Register the replicas for the audits table, so that
// tokens, accounts and webhook subscribers stay on the primary, and set
// [Options.ReadClauses]:
//
//	db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(replicaDSN)}}, audit.TableName))
//	h, err := httpapi.NewHandler(db, &httpapi.Options{ReadClauses: []clause.Expression{dbresolver.Read}})
//
// Each request then reads in one read-only REPEATABLE READ transaction on
// one replica, chosen per request by the resolver's policy: a page and its
// count, or a poll, come from one snapshot. Polling stays exact because a
// standby's snapshot is the primary's as of the WAL it has replayed: its
// xmin counts as running every transaction the primary had not ended
// there, including those it has not heard of yet (it takes every id below
// the newest one it has seen as running until it sees it end), and it
// shows commits in the primary's order. A row below that xmin on a
// standby is therefore final on every server, and a cursor taken from one
// server is good on any other, a lagging one included: there it waits for
// the standby to catch up, it never skips. An after_id the replica has not
// replayed yet is looked up on the primary (in a transaction on db, which
// dbresolver begins on db's own connection) rather than refused. What a
// replica costs is latency: its lag, and on a standby a transaction of the
// primary that took an id and ended without writing any WAL (a crash)
// holds the stream back until the primary's next snapshot record (at most
// about 15 seconds later) tells the standby it is gone.
//
// # Errors
//
// Every invalid parameter (repeated, empty, wrong type, out of range, over
// 255 bytes) gets 400 with a JSON body naming it, which every known client
// of the hosted endpoint reads ([ErrorBody]):
//
//	{"message": "per_page: must be ...", "error": "per_page: must be ...", "code": "invalid_parameter",
//	 "detail": "must be ...", "messages": ["per_page: must be ..."], "parameter": "per_page"}
//
// Unknown parameters are ignored, as the hosted endpoint ignores them;
// [Options.StrictParameters] answers them with 400 instead.
//
// # Beside the server
//
// The Go client is package [github.com/gormaudit/gormaudit/httpapi/client];
// it imports no database code. Webhooks that push new rows to a customer's
// URL are package [github.com/gormaudit/gormaudit/httpapi/webhook]. The JSON
// bodies the server and the client share are in
// [github.com/gormaudit/gormaudit/httpapi/apitype].
package httpapi
