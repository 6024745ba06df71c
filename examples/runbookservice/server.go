package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/uuid"
	"github.com/gormaudit/gormaudit/runbooks"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// server is the example's JSON API.
type server struct {
	db    *gorm.DB
	users httpapi.Authenticator
	log   *slog.Logger
}

// newServer routes the runbook API and mounts the audit endpoint.
func newServer(db *gorm.DB, log *slog.Logger) (http.Handler, error) {
	audits, err := httpapi.NewHandler(db, &httpapi.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	s := &server{db: db, users: httpapi.NewTokenAuthenticator(db), log: log}
	mux := http.NewServeMux()
	audits.Mount(mux, "/v1/runbook_audits") // and /v1/runbook_audits/openapi.json
	audits.Mount(mux, "/runbookaudit")
	mux.Handle("POST /v1/runbooks", s.user(s.createRunbook))
	mux.Handle("GET /v1/runbooks/{id}", s.user(s.getRunbook))
	mux.Handle("PATCH /v1/runbooks/{id}", s.user(s.patchRunbook))
	mux.Handle("DELETE /v1/runbooks/{id}", s.user(s.deleteRunbook))
	mux.Handle("POST /v1/runbooks/{id}/steps", s.user(s.createStep))
	mux.Handle("PATCH /v1/runbooks/{id}/steps/{step_id}", s.user(s.patchStep))
	mux.Handle("DELETE /v1/runbooks/{id}/steps/{step_id}", s.user(s.deleteStep))
	mux.Handle("POST /v1/runbooks/{id}/revert", s.user(s.revertRunbook))
	mux.Handle("POST /v1/runbooks/{id}/steps/{step_id}/revert", s.user(s.revertStep))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path, "")
	})
	return mux, nil
}

// apiError is an error with its HTTP status. param names the offending
// body field or path parameter, and msg then says what is wrong with it.
type apiError struct {
	status      int
	code, param string
	msg         string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_parameter", param: param, msg: fmt.Sprintf(format, args...)}
}

var errNotFound = &apiError{status: http.StatusNotFound, code: "not_found", msg: "not found"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with the audit endpoint's error body, so that one
// client reads the errors of both.
func writeError(w http.ResponseWriter, status int, code, msg, param string) {
	httpapi.WriteError(w, status, httpapi.NewErrorBody(code, msg, param))
}

// call is one authenticated request: the user's account and a context that
// attributes writes to the user and records the request.
type call struct {
	account int64
	ctx     context.Context
}

// user authenticates a person's token, puts the audit actor and request
// metadata in the context, and renders the handler's error as JSON.
func (s *server) user(h func(http.ResponseWriter, *http.Request, call) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.users.Authenticate(r)
		if errors.Is(err, httpapi.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="runbooks"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated",
				"a valid user token is required (Authorization: <token> or Authorization: Bearer <token>)", "")
			return
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "authenticate", "error", err)
			writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
			return
		}
		if p.Type != httpapi.PrincipalUser {
			writeError(w, http.StatusForbidden, "forbidden", "runbooks are edited with a user token; bot tokens read /v1/runbook_audits", "")
			return
		}
		requestID := r.Header.Get("X-Request-ID")
		if !uuid.Valid(requestID) {
			requestID = uuid.New()
		}
		w.Header().Set("X-Request-ID", requestID)
		remote := r.RemoteAddr
		if host, _, err := net.SplitHostPort(remote); err == nil {
			remote = host
		}
		ctx := audit.WithActor(r.Context(), audit.Actor{ID: p.ID, Type: "User"})
		ctx = audit.WithRequest(ctx, audit.Request{RemoteAddress: remote, UUID: requestID})
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		err = h(w, r, call{account: p.AccountID, ctx: ctx})
		var ae *apiError
		var ve *audit.ValueError
		switch {
		case err == nil:
		case errors.As(err, &ae):
			writeError(w, ae.status, ae.code, ae.msg, ae.param)
		case errors.As(err, &ve):
			writeError(w, http.StatusUnprocessableEntity, "unsupported_value", ve.Error(), ve.Column)
		case isRefusedValue(err):
			writeError(w, http.StatusBadRequest, "invalid_value", "the database refused a value of the request", "")
		default:
			s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
		}
	})
}

// transaction runs fn in a transaction of the call's context, again when it
// loses to a concurrent transaction (see retry).
func (s *server) transaction(c call, fn func(tx *gorm.DB) error) error {
	return retry(c.ctx, func() error { return s.db.WithContext(c.ctx).Transaction(fn) })
}

// decode reads a JSON object body into v, rejecting unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large", msg: "the body is over 1 MiB"}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &apiError{status: http.StatusRequestTimeout, code: "request_timeout", msg: "the body did not arrive in time"}
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return badRequest(ute.Field, "must be a JSON %s", ute.Type)
		}
		if errors.Is(err, io.EOF) {
			return badRequest("", "a JSON object body is required")
		}
		return badRequest("", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("", "the body must hold one JSON object")
	}
	return nil
}

func pathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !uuid.Valid(id) {
		return "", &apiError{status: http.StatusNotFound, code: "not_found", param: name, msg: "is not a known UUID"}
	}
	return strings.ToLower(id), nil
}

// runbookOf loads the account's runbook named by the path.
func (s *server) runbookOf(r *http.Request, c call, tx *gorm.DB) (runbooks.Runbook, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return runbooks.Runbook{}, err
	}
	var rb runbooks.Runbook
	err = tx.WithContext(c.ctx).Where("account_id = ? AND id = ?", c.account, id).Take(&rb).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return rb, errNotFound
	}
	return rb, err
}

type runbookInput struct {
	Name        *string          `json:"name"`
	Description *string          `json:"description"`
	OwnerID     *json.RawMessage `json:"owner_id"`
}

func (in runbookInput) changes(creating bool) (map[string]any, error) {
	m := map[string]any{}
	if in.Name != nil {
		name, err := nameOf(*in.Name)
		if err != nil {
			return nil, err
		}
		m["name"] = name
	} else if creating {
		return nil, badRequest("name", "is required")
	}
	if in.Description != nil {
		if err := checkText("description", *in.Description); err != nil {
			return nil, err
		}
		if len(*in.Description) > 10_000 {
			return nil, badRequest("description", "must be at most 10000 characters")
		}
		m["description"] = *in.Description
	}
	if in.OwnerID != nil {
		v, err := nullableUUID("owner_id", *in.OwnerID)
		if err != nil {
			return nil, err
		}
		m["owner_id"] = v
	}
	return m, nil
}

// nameOf validates a runbook's or a step's name and returns it trimmed.
func nameOf(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" || len(name) > 255 {
		return "", badRequest("name", "must be 1 to 255 characters")
	}
	return name, checkText("name", name)
}

func nullableUUID(param string, raw json.RawMessage) (*string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || !uuid.Valid(s) {
		return nil, badRequest(param, "must be a UUID or null")
	}
	s = strings.ToLower(s)
	return &s, nil
}

func (s *server) createRunbook(w http.ResponseWriter, r *http.Request, c call) error {
	var in runbookInput
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := in.changes(true)
	if err != nil {
		return err
	}
	rb := runbooks.Runbook{AccountID: c.account, Name: m["name"].(string)}
	if d, ok := m["description"].(string); ok {
		rb.Description = d
	}
	if o, ok := m["owner_id"].(*string); ok {
		rb.OwnerID = o
	}
	err = retry(c.ctx, func() error { return s.db.WithContext(c.ctx).Create(&rb).Error })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rb)
	return nil
}

func (s *server) getRunbook(w http.ResponseWriter, r *http.Request, c call) error {
	rb, err := s.runbookOf(r, c, s.db)
	if err != nil {
		return err
	}
	if err := s.db.WithContext(c.ctx).Where("runbook_id = ?", rb.ID).Order("position, id").Find(&rb.Steps).Error; err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rb)
	return nil
}

func (s *server) patchRunbook(w http.ResponseWriter, r *http.Request, c call) error {
	var in runbookInput
	return patchRecord(s, w, r, c, &in,
		func(tx *gorm.DB) (runbooks.Runbook, error) { return s.runbookOf(r, c, tx) },
		func(tx *gorm.DB, rb *runbooks.Runbook, m map[string]any) error { return tx.Model(rb).Updates(m).Error })
}

// input is a request body, validated into the columns it changes.
type input interface {
	changes(creating bool) (map[string]any, error)
}

// patchRecord answers a PATCH of one record: it decodes the body into in
// and, in one transaction, loads the record with load and, unless the body
// changes nothing, applies the changes with update. It answers with the
// record.
func patchRecord[T any](s *server, w http.ResponseWriter, r *http.Request, c call, in input,
	load func(tx *gorm.DB) (T, error), update func(tx *gorm.DB, rec *T, m map[string]any) error,
) error {
	if err := decode(r, in); err != nil {
		return err
	}
	m, err := in.changes(false)
	if err != nil {
		return err
	}
	var rec T
	err = s.transaction(c, func(tx *gorm.DB) error {
		var err error
		if rec, err = load(tx); err != nil {
			return err
		}
		if len(m) == 0 {
			return nil
		}
		return update(tx, &rec, m)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

func (s *server) deleteRunbook(w http.ResponseWriter, r *http.Request, c call) error {
	err := s.transaction(c, func(tx *gorm.DB) error {
		rb, err := s.runbookOf(r, c, tx)
		if err != nil {
			return err
		}
		if err := tx.Where("runbook_id = ?", rb.ID).Delete(&runbooks.Step{}).Error; err != nil {
			return err
		}
		return tx.Delete(&rb).Error
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type stepInput struct {
	Name            *string          `json:"name"`
	Position        *int             `json:"position"`
	Config          *json.RawMessage `json:"config"`
	Repeats         *bool            `json:"repeats"`
	Automatic       *bool            `json:"automatic"`
	ActionID        *json.RawMessage `json:"action_id"`
	DelayDuration   *string          `json:"delay_duration"`
	RepeatsDuration *json.RawMessage `json:"repeats_duration"`
	Rules           *json.RawMessage `json:"rules"`
	Conditions      *json.RawMessage `json:"conditions"`
}

// changes validates the input and returns the columns to write.
func (in stepInput) changes(creating bool) (map[string]any, error) {
	m := map[string]any{}
	if in.Name != nil {
		name, err := nameOf(*in.Name)
		if err != nil {
			return nil, err
		}
		m["name"] = name
	} else if creating {
		return nil, badRequest("name", "is required")
	}
	if in.Position != nil {
		if *in.Position < 0 || *in.Position > 10_000 {
			return nil, badRequest("position", "must be from 0 to 10000")
		}
		m["position"] = *in.Position
	}
	if in.Repeats != nil {
		m["repeats"] = *in.Repeats
	}
	if in.Automatic != nil {
		m["automatic"] = *in.Automatic
	}
	for param, raw := range map[string]*json.RawMessage{"config": in.Config, "rules": in.Rules, "conditions": in.Conditions} {
		if raw == nil {
			continue
		}
		if string(*raw) == "null" {
			m[param] = runbooks.JSON(nil)
			continue
		}
		if t := strings.TrimSpace(string(*raw)); !strings.HasPrefix(t, "{") && !strings.HasPrefix(t, "[") {
			return nil, badRequest(param, "must be a JSON object, array or null")
		}
		if err := checkJSON(param, *raw); err != nil {
			return nil, err
		}
		m[param] = runbooks.JSON(*raw)
	}
	if in.ActionID != nil {
		v, err := nullableUUID("action_id", *in.ActionID)
		if err != nil {
			return nil, err
		}
		m["action_id"] = v
	}
	if in.DelayDuration != nil {
		d, err := runbooks.ParseDuration(*in.DelayDuration)
		if err != nil || d < 0 {
			return nil, badRequest("delay_duration", "must be a non-negative ISO 8601 duration such as PT5M")
		}
		m["delay_duration"] = d
	}
	if in.RepeatsDuration != nil {
		if string(*in.RepeatsDuration) == "null" {
			m["repeats_duration"] = nil
		} else {
			var text string
			if err := json.Unmarshal(*in.RepeatsDuration, &text); err != nil {
				return nil, badRequest("repeats_duration", "must be an ISO 8601 duration or null")
			}
			d, err := runbooks.ParseDuration(text)
			if err != nil || d <= 0 {
				return nil, badRequest("repeats_duration", "must be a positive ISO 8601 duration or null")
			}
			m["repeats_duration"] = d
		}
	}
	return m, nil
}

func (s *server) createStep(w http.ResponseWriter, r *http.Request, c call) error {
	var in stepInput
	if err := decode(r, &in); err != nil {
		return err
	}
	m, err := in.changes(true)
	if err != nil {
		return err
	}
	var step runbooks.Step
	err = s.transaction(c, func(tx *gorm.DB) error {
		rb, err := s.runbookOf(r, c, tx)
		if err != nil {
			return err
		}
		step = runbooks.Step{AccountID: c.account, RunbookID: rb.ID}
		if err := applyStep(&step, m); err != nil {
			return err
		}
		return tx.Create(&step).Error
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, step)
	return nil
}

// applyStep sets validated columns on a new step.
func applyStep(s *runbooks.Step, m map[string]any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, s)
}

// stepOf loads the path's step of the account's runbook.
func (s *server) stepOf(r *http.Request, c call, tx *gorm.DB) (runbooks.Step, error) {
	rb, err := s.runbookOf(r, c, tx)
	if err != nil {
		return runbooks.Step{}, err
	}
	id, err := pathID(r, "step_id")
	if err != nil {
		return runbooks.Step{}, err
	}
	var step runbooks.Step
	err = tx.WithContext(c.ctx).Where("runbook_id = ? AND id = ?", rb.ID, id).Take(&step).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return step, errNotFound
	}
	return step, err
}

func (s *server) patchStep(w http.ResponseWriter, r *http.Request, c call) error {
	var in stepInput
	return patchRecord(s, w, r, c, &in,
		func(tx *gorm.DB) (runbooks.Step, error) { return s.stepOf(r, c, tx) },
		func(tx *gorm.DB, step *runbooks.Step, m map[string]any) error {
			if err := tx.Model(step).Updates(m).Error; err != nil {
				return err
			}
			err := tx.Take(step, "id = ?", step.ID).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				// Deleted (by a revert, say) after stepOf read it: the
				// update found no row to change.
				return errNotFound
			}
			return err
		})
}

func (s *server) deleteStep(w http.ResponseWriter, r *http.Request, c call) error {
	err := s.transaction(c, func(tx *gorm.DB) error {
		step, err := s.stepOf(r, c, tx)
		if err != nil {
			return err
		}
		return tx.Delete(&step).Error
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
