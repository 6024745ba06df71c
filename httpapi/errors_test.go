package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/httpapi/client"
)

// TestErrorBodyEveryClientReads decodes one 400 the ways the hosted
// endpoint's clients do: the generated SDKs ({"message"}), the platform's
// error entity ({"detail", "messages", "code", "meta"}), its hand-written
// Go client ({"error": string, "detail", "messages"}) and ours
// (httpapi/client, whose decoding of other bodies its own tests check).
func TestErrorBodyEveryClientReads(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	token := e.bot(t, 1)
	res := e.get(t, token, "per_page=0")
	require.Equal(t, http.StatusBadRequest, res.status)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(res.body, &raw))
	want := map[string]any{
		"message": "per_page: must be an integer from 1 to 100", "error": "per_page: must be an integer from 1 to 100",
		"code": "invalid_parameter", "detail": "must be an integer from 1 to 100",
		"messages": []any{"per_page: must be an integer from 1 to 100"}, "parameter": "per_page",
	}
	if d := cmp.Diff(want, raw); d != "" {
		t.Fatalf("body (-want +got):\n%s", d)
	}

	var sdk struct {
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(res.body, &sdk))
	require.NotEmpty(t, sdk.Message)
	var entity struct {
		Detail   string          `json:"detail"`
		Messages []string        `json:"messages"`
		Code     string          `json:"code"`
		Meta     json.RawMessage `json:"meta"`
	}
	require.NoError(t, json.Unmarshal(res.body, &entity))
	require.NotEmpty(t, entity.Detail)
	require.NotEmpty(t, entity.Messages)
	var handWritten struct {
		Error    string   `json:"error"`
		Detail   string   `json:"detail"`
		Messages []string `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(res.body, &handWritten), "error must be a string")
	require.NotEmpty(t, handWritten.Error)

	_, err := e.client(t, token).List(t.Context(), &client.ListOptions{PerPage: 1000})
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, client.APIError{StatusCode: 400, Code: "invalid_parameter", Message: "per_page: must be an integer from 1 to 100", Parameter: "per_page"}, *ae)
}
