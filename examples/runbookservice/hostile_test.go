package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
)

// failsafe bounds how long a test waits for the server to close a
// connection; the timeouts under test are far shorter.
const failsafe = 10 * time.Second

// timedServer serves the example with small timeouts.
func timedServer(t *testing.T, to timeouts) (addr, user string) {
	t.Helper()
	srv, _, user, _ := inProcess(t)
	srv.Close() // only its handler is wanted
	ts := httptest.NewUnstartedServer(srv.Config.Handler)
	ts.Config = newHTTPServer(srv.Config.Handler, to, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String(), user
}

// readUntilClosed reads the connection until the server closes it and
// returns what it read. It fails if the server keeps it open past the
// failsafe.
func readUntilClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(failsafe)))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (read %q)", failsafe, b)
	}
	return string(b)
}

// TestTimeouts holds connections the ways a hostile client does and
// requires the server to close each one.
func TestTimeouts(t *testing.T) {
	to := timeouts{readHeader: 200 * time.Millisecond, read: 400 * time.Millisecond, write: 2 * time.Second, idle: 300 * time.Millisecond}
	addr, user := timedServer(t, to)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("body trickled one byte per tick", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "POST /v1/runbooks HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\": \"", user)
		require.NoError(t, err)
		done := make(chan struct{})
		sent := make(chan int, 1)
		go func() {
			n := 0
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			defer func() { sent <- n }()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
					n++
				}
			}
		}()
		got := readUntilClosed(t, c)
		close(done)
		n := <-sent
		require.True(t, strings.HasPrefix(got, "HTTP/1.1 408 "), "the server answers the stalled request: %q", got)
		require.Less(t, n, 100000, "the server stopped reading before the body ended")
		t.Logf("closed after %d trickled bytes", n)
	})

	t.Run("headers never finished", func(t *testing.T) {
		c := dial()
		_, err := io.WriteString(c, "GET /v1/runbook_audits HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		readUntilClosed(t, c)
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "GET /v1/runbooks/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", demoRunbookID, user)
		require.NoError(t, err)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "the connection is kept alive")
		require.NoError(t, c.SetReadDeadline(time.Now().Add(failsafe)))
		rest, err := io.ReadAll(br)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the idle connection was kept for %s", failsafe)
		require.Empty(t, rest)
	})
}

// TestNULIsA400NamingTheField sends the NUL character that PostgreSQL's
// text and jsonb refuse, in every free-text field; the answer is a 400
// naming the field, on both databases, and nothing is written.
func TestNULIsA400NamingTheField(t *testing.T) {
	srv, db, user, _ := inProcess(t)
	var before int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&before).Error)
	rb := "/v1/runbooks/" + demoRunbookID
	step := rb + "/steps/" + demoStepID
	cases := []struct{ method, path, body, field string }{
		{"POST", "/v1/runbooks", `{"name": "a\u0000b"}`, "name"},
		{"PATCH", rb, `{"description": "x\u0000"}`, "description"},
		{"POST", rb + "/steps", `{"name": "\u0000"}`, "name"},
		{"PATCH", step, `{"config": {"k": "v\u0000"}}`, "config"},
		{"PATCH", step, `{"config": {"k\u0000": 1}}`, "config"},
		{"PATCH", step, `{"rules": [{"deep": ["\u0000"]}]}`, "rules"},
		{"PATCH", step, `{"conditions": {"a": {"b": "\u0000"}}}`, "conditions"},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", user)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		var body httpapi.ErrorBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s %s: %+v", c.method, c.body, body)
		require.Equal(t, c.field, body.Parameter, c.body)
		require.Equal(t, "invalid_parameter", body.Code)
		require.Contains(t, body.Message, "NUL")
	}
	// An escaped backslash before u0000 is text, not NUL.
	req, err := http.NewRequest("PATCH", srv.URL+step, strings.NewReader(`{"config": {"k": "\\u0000"}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", user)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var after int64
	require.NoError(t, db.Model(&audit.Audit{}).Count(&after).Error)
	require.Equal(t, before+1, after, "only the last request wrote")
}

// TestErrorBodyReadByEveryClient checks the example's errors carry the
// audit endpoint's error body, under one name for the offending field.
func TestErrorBodyReadByEveryClient(t *testing.T) {
	srv, _, user, _ := inProcess(t)
	req, err := http.NewRequest("PATCH", srv.URL+"/v1/runbooks/"+demoRunbookID+"/steps/"+demoStepID, strings.NewReader(`{"position": -1}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, map[string]any{
		"message": "position: must be from 0 to 10000", "error": "position: must be from 0 to 10000",
		"code": "invalid_parameter", "detail": "must be from 0 to 10000",
		"messages": []any{"position: must be from 0 to 10000"}, "parameter": "position",
	}, body)
}

// TestRetry runs operations that lose to concurrent transactions: they are
// retried, and after maxAttempts answered with a 409.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	deadlock := fmt.Errorf("update: %w", &pgconn.PgError{Code: "40P01"})
	serialization := &pgconn.PgError{Code: "40001"}
	calls := 0
	err := retry(ctx, func() error {
		calls++
		switch calls {
		case 1:
			return deadlock
		case 2:
			return serialization
		case 3:
			return fmt.Errorf("insert: %w", audit.ErrVersionConflict)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 4, calls)

	calls = 0
	err = retry(ctx, func() error { calls++; return deadlock })
	require.ErrorIs(t, err, errConflict)
	require.Equal(t, maxAttempts, calls)
	require.Equal(t, http.StatusConflict, errConflict.status)

	calls = 0
	err = retry(ctx, func() error { calls++; return gorm.ErrRecordNotFound })
	require.ErrorIs(t, err, gorm.ErrRecordNotFound, "other errors are not retried")
	require.Equal(t, 1, calls)

	require.True(t, isRefusedValue(&pgconn.PgError{Code: "22P05"}))
	require.False(t, isRefusedValue(deadlock))
}
