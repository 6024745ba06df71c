// Package apitype holds the JSON bodies of the runbook audit endpoint that
// the server (package httpapi) writes and the Go client (package
// httpapi/client) reads: page and cursor envelopes and the error body. It
// imports nothing but the standard library, so that a program using only
// the client needs no database code.
package apitype

// Pagination describes a page of rows, as the endpoint reports it under
// "pagination".
type Pagination struct {
	// Count is the number of matching rows, capped by the server's count
	// limit when CountExact is false.
	Count      int64 `json:"count"`
	CountExact bool  `json:"count_exact"`
	// Page is this page's number, PerPage the page size it was read
	// with, and Items the rows on it.
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Items   int `json:"items"`
	// Pages and Last are the number of the last page.
	Pages int64 `json:"pages"`
	Last  int64 `json:"last"`
	// Prev and Next are the neighbouring page numbers, nil at the ends.
	Prev *int `json:"prev"`
	Next *int `json:"next"`
	// Truncated is true when rows of the page were left out to keep the
	// response under the server's byte cap (Items is then below PerPage);
	// page numbers keep their meaning, so the next page does not hold
	// them: read them as pages of one row, which are never cut, or poll.
	Truncated bool `json:"truncated,omitempty"`
}

// Cursor is the position a poll of the endpoint reached, reported under
// "cursor".
type Cursor struct {
	// Next is the cursor to send on the next poll.
	Next string `json:"next"`
	// NextAfterID is the id of the last row handed out, for clients that
	// poll with after_id; null when nothing has been handed out yet.
	NextAfterID *int64 `json:"next_after_id"`
	// More is true when more rows are ready now.
	More bool `json:"more"`
	// Items is the number of rows in the response.
	Items int `json:"items"`
}

// ErrorBody is the JSON body of every error response of the endpoint. It
// carries the same text under the names each known client reads: message
// (the hosted endpoint's generated SDKs), error as a string (the platform's
// hand-written Go client), and detail and messages (the platform's error
// entity), with a machine-readable code and, for a bad parameter, its name.
type ErrorBody struct {
	// Message says what is wrong, for a person to read.
	Message string `json:"message"`
	// Error is Message again, for clients that read "error" as a string.
	Error string `json:"error"`
	// Code is machine-readable, such as "invalid_parameter" or
	// "unauthenticated".
	Code string `json:"code"`
	// Detail is what is wrong with Parameter, or Message when no
	// parameter is at fault.
	Detail string `json:"detail"`
	// Messages is Message as a one-element list.
	Messages []string `json:"messages"`
	// Parameter names the offending query parameter or body field; it is
	// absent when no single one is at fault.
	Parameter string `json:"parameter,omitempty"`
}
