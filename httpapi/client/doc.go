// Package client reads the runbook audit endpoint (package httpapi) from Go
// with a bot token, with typed rows and without linking any database code.
//
// [New] makes a client of the URL the endpoint is mounted at:
//
//	c, err := client.New("https://example.com/v1/runbook_audits", botToken, nil) // nil: the defaults
//
// [Client.List] reads one page, [Client.All] every page (completing pages
// the server cut short to stay under its byte cap), [Client.Poll] one step
// of the polling stream, and [Client.Watch] follows the stream, handing
// each new row to a func once and reporting cursors to save so that it
// resumes after a restart. Rows are [Row], the audit-row format the server
// writes. Answers other than 200 are [*APIError], carrying the endpoint's
// JSON error body.
package client
