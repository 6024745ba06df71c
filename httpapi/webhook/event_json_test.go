package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/internal/jsontest"
	"github.com/gormaudit/gormaudit/runbooks"
)

// A webhook carries the audit row exactly as the endpoint renders it: absent
// metadata is null, and audited_changes keys come in PostgreSQL's jsonb
// order (shorter first, then bytewise), as in the hosted reference row.
func TestEventRowIsInTheHostedForm(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	t.Cleanup(srv.Close)
	_, err := AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: srv.URL, AllowPrivateNetworks: true})
	require.NoError(t, err)
	stop := start(t, newNotifier(t, e, nil))
	defer stop()
	rb := runbooks.Runbook{AccountID: 1, Name: "r"}
	require.NoError(t, e.w().Create(&rb).Error)
	require.NoError(t, e.w().Create(&runbooks.Step{AccountID: 1, RunbookID: rb.ID, Name: "s"}).Error)

	var got []json.RawMessage
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for len(got) < 2 {
		select {
		case b := <-bodies:
			got = append(got, b)
		case <-deadline.C:
			t.Fatalf("only %d webhooks arrived within a minute", len(got))
		}
	}
	for _, body := range got {
		var ev struct {
			Audit map[string]json.RawMessage `json:"audit"`
		}
		require.NoError(t, json.Unmarshal(body, &ev))
		for _, k := range []string{"comment", "remote_address", "request_uuid"} {
			require.Equal(t, "null", string(ev.Audit[k]), "%s in %s", k, body)
		}
		keys := jsontest.ObjectKeys(t, ev.Audit["audited_changes"])
		want := append([]string(nil), keys...)
		sortJSONB(want)
		if d := cmp.Diff(want, keys); d != "" {
			t.Fatalf("audited_changes keys not in jsonb order (-want +got):\n%s", d)
		}
	}
}

// sortJSONB sorts keys as PostgreSQL's jsonb stores them: shorter first,
// then bytewise.
func sortJSONB(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && (len(keys[j]) < len(keys[j-1]) || len(keys[j]) == len(keys[j-1]) && keys[j] < keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}
