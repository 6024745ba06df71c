// Package httpapi serves the runbook audit log over HTTP: an embeddable
// handler that lets an account's bot users read their own account's audit
// rows, by page or by polling for what changed since their last look.
//
// # Mounting
//
// [NewHandler] returns an http.Handler; mount it wherever the service likes:
//
//	h, err := httpapi.NewHandler(db, nil) // nil: the defaults
//	if err != nil { ... }
//	mux.Handle("/v1/runbook_audits", h)
//	mux.Handle("/runbookaudit", h)
//
// The database needs the tables of audit.Migrate and, for the default bot
// token authentication, of [Migrate]. Only GET is served (other methods get
// 405 with "Allow: GET"). The OpenAPI 3 document of the endpoint is
// [OpenAPI]; the handler also serves it at its path followed by
// "/openapi.json" when the mux routes that path to it.
//
// # Who may read
//
// Every request is authenticated by [Options.Authenticator]. The default
// reads "Authorization: Bearer <token>" and checks bot tokens made by
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
//	{"data": [rows], "pagination": {"count", "count_exact", "page", "items", "pages", "last", "prev", "next"}}
//
// ordered by created_at then id (sort=desc by default, or asc), filtered by
// auditable_type, auditable_id, runbook_id (the runbook's rows and all of
// its steps' rows), user_id, action, since (inclusive) and until
// (exclusive). per_page defaults to 20, at most 100. Counting stops at
// [Options.CountLimit] rows so that a large account costs no more than a
// small one: above it, count is the limit and count_exact is false. Page
// numbers reach [Options.MaxOffset] rows deep; read deeper by polling.
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
// # Errors
//
// Every invalid parameter (unknown, repeated, empty, wrong type, out of
// range, over 255 bytes) gets 400 with a JSON body naming it:
//
//	{"error": {"code": "invalid_parameter", "parameter": "per_page", "message": "..."}}
//
// # Go client
//
// [NewClient] reads the endpoint from Go with typed rows: [Client.List] one
// page, [Client.All] every page, [Client.Poll] one step of the polling
// stream, and [Client.Watch] follows the stream, handing each new row to a
// func once and reporting cursors to save so that it resumes after a
// restart.
//
// # Alerting
//
// A [Notifier] delivers every new audit row matching a subscriber's filters
// ([AddSubscriber]) to its webhook as a signed POST, in the polling stream's
// order, retrying with exponential backoff and storing its cursor only
// after a 2xx: at least once, in order per subscriber, nothing lost across
// restarts. Receivers check deliveries with [VerifySignature].
package httpapi
