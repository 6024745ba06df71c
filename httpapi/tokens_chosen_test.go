package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/httpapi"
	"github.com/gormaudit/gormaudit/internal/dbtest"
)

func TestIssueTokenWithAChosenPlaintext(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	ctx := context.Background()
	require.NoError(t, httpapi.Migrate(ctx, db))
	chosen := httpapi.TokenPrefix + "demo-token-with-enough-entropy-0123"
	got, tok, err := httpapi.IssueToken(ctx, db, httpapi.TokenSpec{AccountID: 3, Plaintext: chosen})
	require.NoError(t, err)
	require.Equal(t, chosen, got)
	require.NotContains(t, tok.Hint, "entropy", "the hint is only the token's start")

	_, _, err = httpapi.IssueToken(ctx, db, httpapi.TokenSpec{AccountID: 3, Plaintext: chosen})
	require.ErrorIs(t, err, httpapi.ErrTokenExists)
	for _, bad := range []string{"demo", httpapi.TokenPrefix + "short", httpapi.TokenPrefix + "has spaces in it, which is not base64url"} {
		_, _, err := httpapi.IssueToken(ctx, db, httpapi.TokenSpec{AccountID: 3, Plaintext: bad})
		require.Error(t, err, bad)
	}

	// The chosen token authenticates like an issued one.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+chosen)
	p, err := httpapi.NewTokenAuthenticator(db).Authenticate(req)
	require.NoError(t, err)
	require.Equal(t, int64(3), p.AccountID)
	require.True(t, p.IsBot())
}
