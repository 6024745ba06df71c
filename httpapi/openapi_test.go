package httpapi

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"
)

// loadSpec loads the document with kin-openapi, a validator written by
// others, and requires it to be a valid OpenAPI 3 document.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(t.Context()))
	return doc
}

var endpointPaths = []string{"/v1/runbook_audits", "/runbookaudit"}

// TestOpenAPIDocument checks what the document must say beyond being
// valid: both paths, servers, a license, both forms of authentication,
// HEAD, and 405 only on the methods that get it.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	require.NotEmpty(t, doc.Servers)
	require.NotNil(t, doc.Info.License)
	require.Equal(t, "MIT", doc.Info.License.Name)
	require.ElementsMatch(t, endpointPaths, slices.Collect(maps.Keys(doc.Paths.Map())))

	key := doc.Components.SecuritySchemes["apiKey"].Value
	require.Equal(t, []string{"apiKey", "header", "Authorization"}, []string{key.Type, key.In, key.Name})
	bearer := doc.Components.SecuritySchemes["bearer"].Value
	require.Equal(t, []string{"http", "bearer"}, []string{bearer.Type, bearer.Scheme})
	require.Equal(t, openapi3.SecurityRequirements{{"apiKey": {}}, {"bearer": {}}}, doc.Security)

	ids := map[string]bool{}
	for _, p := range endpointPaths {
		item := doc.Paths.Find(p)
		for method, op := range item.Operations() {
			require.False(t, ids[op.OperationID], "operationId %s is used twice", op.OperationID)
			ids[op.OperationID] = true
			codes := slices.Sorted(maps.Keys(op.Responses.Map()))
			switch method {
			case http.MethodGet, http.MethodHead:
				require.Equal(t, []string{"200", "400", "401", "403"}, codes, "%s %s", method, p)
			default:
				require.Equal(t, []string{"405"}, codes, "%s %s", method, p)
			}
		}
		require.Len(t, item.Operations(), 6, p)
	}
	require.Contains(t, ids, "listRunbookAudits", "the hosted operation's id")
}

// TestOpenAPIParameters requires the document to list exactly the
// parameters the parser knows, with the limits it enforces.
func TestOpenAPIParameters(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	for _, p := range endpointPaths {
		for _, op := range []*openapi3.Operation{doc.Paths.Find(p).Get, doc.Paths.Find(p).Head} {
			var names []string
			for _, ref := range op.Parameters {
				pm := ref.Value
				names = append(names, pm.Name)
				s := pm.Schema.Value
				switch pm.Name {
				case "per_page":
					require.Equal(t, 100.0, *s.Max)
					require.Equal(t, 20.0, s.Default)
				case "auditable_type":
					require.Equal(t, []any{runbooks.TypeStep, runbooks.TypeRunbook}, s.Enum)
					require.Equal(t, runbooks.TypeStep, s.Default)
				}
			}
			require.ElementsMatch(t, slices.Collect(maps.Keys(knownParams)), names)
		}
	}
}

// specCheck validates live requests and responses against the document.
type specCheck struct {
	doc *openapi3.T
	srv *httptest.Server
}

func (s *specCheck) route(t *testing.T, req *http.Request) *routers.Route {
	t.Helper()
	item := s.doc.Paths.Find(req.URL.Path)
	require.NotNil(t, item, "path %s is not documented", req.URL.Path)
	op := item.GetOperation(req.Method)
	require.NotNil(t, op, "%s %s is not documented", req.Method, req.URL.Path)
	return &routers.Route{Spec: s.doc, Path: req.URL.Path, PathItem: item, Method: req.Method, Operation: op}
}

// do sends the request through a server and returns the error of
// validating the response (and, with checkRequest, the request) against
// the document.
func (s *specCheck) do(t *testing.T, method, path, token, rawQuery string, checkRequest bool) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.srv.URL+path+"?"+rawQuery, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, Route: s.route(t, req),
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true},
	}
	if checkRequest {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in), "%s ?%s", method, rawQuery)
	}
	resp, err := s.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if method == http.MethodHead {
		require.Empty(t, body)
	}
	return resp.StatusCode, openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
}

// TestResponsesMatchOpenAPI validates live requests and responses of both
// paths, every status and both methods against the document.
func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	e := setup(t, nil)
	token := e.bot(t, 1)
	f := writeFixture(t, e)
	e.settle(t)
	person, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 1, PrincipalType: PrincipalUser})
	require.NoError(t, err)
	notEnabled, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 9})
	require.NoError(t, err)
	mux := http.NewServeMux()
	for _, p := range endpointPaths {
		e.h.Mount(mux, p)
	}
	s := &specCheck{doc: doc, srv: httptest.NewServer(mux)}
	t.Cleanup(s.srv.Close)

	cases := []struct {
		name, method, token, query string
		status                     int
	}{
		{"first page", "GET", token, "", 200},
		{"raw token, hosted query", "GET", token, "auditable_type=Runbooks%3A%3AStep&page=1&per_page=5&sort=ASC", 200},
		{"second page", "GET", "Bearer " + token, "per_page=3&page=2", 200},
		{"past the end", "GET", token, "page=9", 200},
		{"filtered", "GET", token, "runbook_id=" + f.rbA.ID + "&action=update&sort=asc", 200},
		{"poll start", "GET", token, "after_id=0&per_page=2", 200},
		{"poll empty", "GET", token, "after_id=0&user_id=nobody", 200},
		{"HEAD", "HEAD", token, "per_page=2", 200},
		{"bad parameter", "GET", token, "per_page=1000", 400},
		{"HEAD, bad parameter", "HEAD", token, "per_page=1000", 400},
		{"no token", "GET", "", "", 401},
		{"not a bot", "GET", person, "", 403},
		{"not enabled", "GET", notEnabled, "", 403},
		{"POST", "POST", token, "", 405},
		{"DELETE", "DELETE", token, "", 405},
	}
	for _, p := range endpointPaths {
		for _, c := range cases {
			status, err := s.do(t, c.method, p, c.token, c.query, c.status == 200)
			require.Equal(t, c.status, status, "%s %s", c.name, p)
			require.NoError(t, err, "%s %s: the response does not match the document", c.name, p)
		}
	}
	// A poll continued with the cursor returned.
	first := e.list(t, token, "after_id=0&per_page=2")
	_, err = s.do(t, "GET", endpointPaths[0], token, "cursor="+first.Cursor.Next, true)
	require.NoError(t, err)

	// The validation is not vacuous: a row that breaks the schema fails.
	req := httptest.NewRequest(http.MethodGet, "/v1/runbook_audits", nil)
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: s.route(t, req)},
		Status:                 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"data": [{"id": 1.5}], "pagination": {}}`)),
	})
	require.Error(t, err)
}

// TestOpenAPIServed requires the document at <mount>/openapi.json on every
// path the handler is mounted at, without authentication.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	mux := http.NewServeMux()
	for _, p := range endpointPaths {
		e.h.Mount(mux, p)
	}
	for _, p := range endpointPaths {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", p+OpenAPIPath, nil))
		require.Equal(t, 200, w.Code, p)
		require.Equal(t, "application/json", w.Header().Get("Content-Type"))
		require.JSONEq(t, string(OpenAPI()), w.Body.String())
	}
}
