package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/dbtest"
)

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return httpapi.TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// service is the example binary running as a user would run it.
type service struct {
	base      string
	cmd       *exec.Cmd
	output    *bytes.Buffer // everything it printed after the listening line
	outputEOF chan struct{}
	// db is the service's PostgreSQL schema, seen from the test; nil on
	// SQLite.
	db *gorm.DB
}

// startService builds the binary, starts it on a free port with chosen
// tokens and waits for the line that says where it listens.
func startService(t *testing.T, userToken, botToken string) *service {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "runbookservice")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "build the example")

	args := []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "demo.db"),
		"-demo-user-token", userToken, "-demo-bot-token", botToken}
	var db *gorm.DB
	if dbtest.Dialect() == dbtest.Postgres {
		var dsn string
		db, dsn = dbtest.OpenWithURL(t) // a fresh schema for this run
		args = append(args, "-database-url", dsn)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	s := &service{cmd: cmd, output: &bytes.Buffer{}, outputEOF: make(chan struct{}), db: db}
	lines := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "runbookservice listening on "); ok {
			s.base, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	require.NotEmpty(t, s.base, "the service never said where it listens")
	go func() {
		defer close(s.outputEOF)
		for lines.Scan() {
			s.output.WriteString(lines.Text() + "\n")
		}
	}()
	return s
}

// call makes one request and decodes the JSON answer into out (if non-nil).
func (s *service) call(t *testing.T, method, path, token string, body any, header http.Header, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode
}

type auditRow struct {
	ID             int64                      `json:"id"`
	AuditableID    string                     `json:"auditable_id"`
	AuditableType  string                     `json:"auditable_type"`
	Action         string                     `json:"action"`
	UserID         string                     `json:"user_id"`
	Version        int                        `json:"version"`
	Comment        string                     `json:"comment"`
	RemoteAddress  string                     `json:"remote_address"`
	RequestUUID    string                     `json:"request_uuid"`
	AuditedChanges map[string]json.RawMessage `json:"audited_changes"`
	CreatedAt      string                     `json:"created_at"`
}

type auditList struct {
	Data []auditRow `json:"data"`
}

// TestServiceAsAUserRunsIt builds the example, starts it, edits the demo
// runbook over HTTP, reads the audit log, reverts, reads again and stops it
// with SIGINT.
func TestServiceAsAUserRunsIt(t *testing.T) {
	userToken, botToken := randomToken(t), randomToken(t)
	s := startService(t, userToken, botToken)
	auditsPath := "/v1/runbook_audits?sort=asc&per_page=100&runbook_id=" + demoRunbookID

	// Tokens go where they belong.
	require.Equal(t, http.StatusUnauthorized, s.call(t, "GET", "/v1/runbooks/"+demoRunbookID, "", nil, nil, nil))
	require.Equal(t, http.StatusForbidden, s.call(t, "GET", "/v1/runbooks/"+demoRunbookID, botToken, nil, nil, nil))
	require.Equal(t, http.StatusForbidden, s.call(t, "GET", auditsPath, userToken, nil, nil, nil))

	if s.db != nil {
		// On PostgreSQL the audit log is partitioned by month, with the
		// current month and the next three ready.
		var kind string
		require.NoError(t, s.db.Raw(`SELECT relkind::text FROM pg_class WHERE oid = to_regclass('audits')`).Scan(&kind).Error)
		require.Equal(t, "p", kind)
		for i := range audit.DefaultMonthsAhead + 1 {
			name := "audits_p" + time.Now().UTC().AddDate(0, i, 1-time.Now().UTC().Day()).Format("2006_01")
			var n int64
			require.NoError(t, s.db.Raw(`SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass(?)
				AND inhparent = to_regclass('audits')`, name).Scan(&n).Error)
			require.EqualValues(t, 1, n, "partition %s", name)
		}
	}

	var before auditList
	require.Equal(t, http.StatusOK, s.call(t, "GET", auditsPath, botToken, nil, nil, &before))
	require.NotEmpty(t, before.Data, "the demo runbook has history")
	last := before.Data[len(before.Data)-1]

	// Edit a step.
	var rb struct {
		Steps []struct {
			ID, Name string
		} `json:"steps"`
	}
	require.Equal(t, http.StatusOK, s.call(t, "GET", "/v1/runbooks/"+demoRunbookID, userToken, nil, nil, &rb))
	require.NotEmpty(t, rb.Steps)
	step := rb.Steps[0]
	requestID := "3f7a9c1e-5b2d-4e8f-a6c0-9d1b2e3f4a5b"
	require.Equal(t, http.StatusOK, s.call(t, "PATCH", "/v1/runbooks/"+demoRunbookID+"/steps/"+step.ID, userToken,
		map[string]any{"name": "Assign the Incident Commander", "delay_duration": "PT2M"},
		http.Header{"X-Request-Id": {requestID}}, nil))
	require.Equal(t, http.StatusBadRequest, s.call(t, "PATCH", "/v1/runbooks/"+demoRunbookID+"/steps/"+step.ID, userToken,
		map[string]any{"delay_duration": "two minutes"}, nil, nil))

	var after auditList
	require.Equal(t, http.StatusOK, s.call(t, "GET", auditsPath, botToken, nil, nil, &after))
	require.Len(t, after.Data, len(before.Data)+1)
	edit := after.Data[len(after.Data)-1]
	require.Equal(t, "update", edit.Action)
	require.Equal(t, step.ID, edit.AuditableID)
	require.Equal(t, demoUserID, edit.UserID)
	require.Equal(t, "127.0.0.1", edit.RemoteAddress)
	require.Equal(t, requestID, edit.RequestUUID)
	require.JSONEq(t, `["`+step.Name+`","Assign the Incident Commander"]`, string(edit.AuditedChanges["name"]))
	require.JSONEq(t, `["PT0S","PT2M"]`, string(edit.AuditedChanges["delay_duration"]))

	// Preview, then revert the runbook to the moment before the edit.
	var preview struct {
		DryRun  bool `json:"dry_run"`
		Records []struct {
			ID      string                     `json:"id"`
			Changes map[string]json.RawMessage `json:"changes"`
		} `json:"records"`
	}
	at := map[string]any{"at": last.CreatedAt}
	require.Equal(t, http.StatusOK, s.call(t, "POST", "/v1/runbooks/"+demoRunbookID+"/revert", userToken,
		map[string]any{"at": last.CreatedAt, "dry_run": true}, nil, &preview))
	require.True(t, preview.DryRun)
	require.Len(t, preview.Records, 1)
	require.JSONEq(t, `["Assign the Incident Commander","`+step.Name+`"]`, string(preview.Records[0].Changes["name"]))
	var check auditList
	require.Equal(t, http.StatusOK, s.call(t, "GET", auditsPath, botToken, nil, nil, &check))
	require.Len(t, check.Data, len(after.Data), "a dry run writes nothing")

	require.Equal(t, http.StatusOK, s.call(t, "POST", "/v1/runbooks/"+demoRunbookID+"/revert", userToken, at, nil, nil))
	var reverted auditList
	require.Equal(t, http.StatusOK, s.call(t, "GET", auditsPath, botToken, nil, nil, &reverted))
	require.Len(t, reverted.Data, len(after.Data)+1)
	undo := reverted.Data[len(reverted.Data)-1]
	require.Equal(t, "update", undo.Action)
	require.Equal(t, edit.Version+1, undo.Version)
	require.Contains(t, undo.Comment, "revert")
	require.JSONEq(t, `["Assign the Incident Commander","`+step.Name+`"]`, string(undo.AuditedChanges["name"]))

	require.Equal(t, http.StatusOK, s.call(t, "GET", "/v1/runbooks/"+demoRunbookID, userToken, nil, nil, &rb))
	require.Equal(t, step.Name, rb.Steps[0].Name)

	// Stop it as a terminal would.
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	<-s.outputEOF
	require.NoError(t, s.cmd.Wait(), "the service must exit 0 after SIGINT")
	require.Contains(t, s.output.String(), "runbookservice: stopped")
}

func TestFlags(t *testing.T) {
	var help bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &help)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"-addr", "-db", "-database-url", "-demo-user-token", "-demo-bot-token",
		"-read-header-timeout", "-read-timeout", "-write-timeout", "-idle-timeout"} {
		require.Contains(t, help.String(), name)
	}
	cfg, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, defaultTimeouts, cfg.timeouts)
	cfg, err = parseFlags([]string{"-read-timeout", "2s"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, cfg.timeouts.read)
	_, err = parseFlags([]string{"-idle-timeout", "0s"}, io.Discard)
	require.Error(t, err)
	cfg, err = parseFlags([]string{"-addr", ":9999", "-demo-bot-token", "gat_x"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ":9999", cfg.addr)
	require.Equal(t, "gat_x", cfg.botToken)
	_, err = parseFlags([]string{"extra"}, io.Discard)
	require.Error(t, err)
}

// TestMaintainPartitionsRunsUntilStopped runs the service's maintenance
// loop with a short interval: it maintains again and again, logs a
// failure and goes on, and returns once its context is done.
func TestMaintainPartitionsRunsUntilStopped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{})
	returned := make(chan struct{})
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	go func() {
		defer close(returned)
		n := 0
		maintainPartitions(ctx, time.Millisecond, log, func(ctx context.Context) error {
			n++
			select {
			case calls <- struct{}{}:
			case <-ctx.Done():
			}
			if n == 1 {
				return errors.New("partition refused")
			}
			return nil
		})
	}()
	for range 3 {
		<-calls
	}
	cancel()
	<-returned
	require.Contains(t, logged.String(), "partition refused")
}
