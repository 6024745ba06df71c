package client

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/httpapi"
)

// TestDecodeAPIError reads the endpoint's error body, the body of earlier
// versions of the endpoint, and a body that is not the endpoint's.
func TestDecodeAPIError(t *testing.T) {
	t.Parallel()
	current, err := json.Marshal(httpapi.NewErrorBody("invalid_parameter", "must be an integer from 1 to 100", "per_page"))
	require.NoError(t, err)
	require.Equal(t, &APIError{StatusCode: 400, Code: "invalid_parameter", Message: "per_page: must be an integer from 1 to 100", Parameter: "per_page"},
		decodeAPIError(400, current))
	legacy := []byte(`{"error": {"code": "invalid_parameter", "message": "per_page: bad", "parameter": "per_page"}}`)
	require.Equal(t, &APIError{StatusCode: 400, Code: "invalid_parameter", Message: "per_page: bad", Parameter: "per_page"},
		decodeAPIError(400, legacy), "the body of earlier versions")
	require.Equal(t, &APIError{StatusCode: 502}, decodeAPIError(502, []byte("<html>bad gateway</html>")))
}
