package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/internal/dialect"
)

// maxAttempts bounds how often a write that lost to a concurrent
// transaction (a deadlock, a serialization failure) is run.
const maxAttempts = 6

// retryBase is the wait after a first lost attempt; it doubles with each
// further one, with jitter, so that the colliding writers do not collide
// again in step.
const retryBase = 5 * time.Millisecond

// errConflict answers a write that still lost after maxAttempts.
var errConflict = &apiError{status: http.StatusConflict, code: "conflict",
	msg: "the change collided with concurrent changes and was not made; send it again"}

// retry runs op, and runs it again while it loses to a concurrent
// transaction, at most maxAttempts times in all; it then returns
// errConflict. op must be a whole transaction, so that a lost attempt left
// nothing behind.
func retry(ctx context.Context, op func() error) error {
	wait := retryBase
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxAttempts {
			return errConflict
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

// retryable reports whether err means the transaction lost to a
// concurrent one and would likely succeed if run again: a deadlock or
// serialization failure on PostgreSQL, a version recorded first by
// another transaction, a busy database on SQLite.
func retryable(err error) bool {
	if e, ok := dialect.Classify(err); ok {
		switch e.Kind {
		case dialect.KindDeadlock, dialect.KindSerializationFailure, dialect.KindBusy:
			return true
		}
	}
	return errors.Is(err, audit.ErrVersionConflict)
}

// isRefusedValue reports whether the database refused a value of the
// request (a PostgreSQL data exception, class 22), which is the caller's
// fault, not the service's. Known cases are refused earlier, naming the
// field; this is the net for the rest.
func isRefusedValue(err error) bool {
	e, ok := dialect.Classify(err)
	return ok && e.Kind == dialect.KindDataException
}

// checkText refuses a string the database cannot store: PostgreSQL text
// holds no NUL character. SQLite could, but the service answers the same
// on both.
func checkText(param, s string) error {
	if strings.ContainsRune(s, 0) {
		return badRequest(param, "must not contain the NUL character (\\u0000)")
	}
	return nil
}

// checkJSON refuses a JSON document nested deeper than the audit log
// records (audit.MaxNestingDepth: 422), or with a NUL character in a string
// or a key: PostgreSQL's jsonb cannot store \u0000 (400).
func checkJSON(param string, raw json.RawMessage) error {
	// Checked first: a document too deep for the audit log (and for
	// encoding/json beyond 10,000 levels) is refused before it is parsed.
	if err := audit.CheckNesting(raw); err != nil {
		return &apiError{status: http.StatusUnprocessableEntity, code: "unsupported_value", param: param, msg: err.Error()}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return badRequest(param, "must be valid JSON")
	}
	if hasNUL(v) {
		return badRequest(param, "must not contain the NUL character (\\u0000)")
	}
	return nil
}

func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}
