package httpapi

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the JSON body of every error response of the endpoint. It
// carries the same text under the names each known client reads: message
// (the hosted endpoint's generated SDKs), error as a string (the platform's
// hand-written Go client), and detail and messages (the platform's error
// entity), with a machine-readable code and, for a bad parameter, its name.
// Services that answer beside the endpoint, such as the example service,
// write their errors with [WriteError] so that one client reads them all.
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

// NewErrorBody returns the body of an error with the given code. When
// parameter is not empty, the message is prefixed with it and detail is
// the reason alone.
func NewErrorBody(code, reason, parameter string) ErrorBody {
	msg := reason
	if parameter != "" {
		msg = parameter + ": " + reason
	}
	return ErrorBody{Message: msg, Error: msg, Code: code, Detail: reason, Messages: []string{msg}, Parameter: parameter}
}

// WriteError writes body as the JSON response with the given status.
func WriteError(w http.ResponseWriter, status int, body ErrorBody) {
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(NewErrorBody("internal", "internal error", ""))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, reason, param string) {
	WriteError(w, status, NewErrorBody(code, reason, param))
}
