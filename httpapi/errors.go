package httpapi

import (
	"encoding/json"
	"github.com/gormaudit/gormaudit/httpapi/apitype"
	"net/http"
)

// ErrorBody is the JSON body of every error response of the endpoint (see
// [apitype.ErrorBody]). Services that answer beside the endpoint, such as
// the example service, write their errors with [WriteError] so that one
// client reads them all.
type ErrorBody = apitype.ErrorBody

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
