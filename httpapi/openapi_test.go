package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"
)

// validator checks JSON values against the subset of OpenAPI 3.0 schema
// keywords the document uses. It fails on any keyword it does not know, so
// that the document cannot drift into saying things nobody checks.
type validator struct{ doc map[string]any }

var knownKeywords = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true,
	"enum": true, "nullable": true, "minimum": true, "maximum": true, "maxLength": true, "format": true,
	"pattern": true, "oneOf": true, "$ref": true, "description": true, "default": true,
}

func (v *validator) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		cur := any(v.doc)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		s = cur.(map[string]any)
	}
}

// check returns the violations of value against schema s, at path.
func (v *validator) check(path string, s map[string]any, value any) []string {
	s = v.resolve(s)
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	for k := range s {
		if !knownKeywords[k] {
			bad("schema keyword %q is not checked by this validator", k)
		}
	}
	if value == nil {
		if s["nullable"] != true {
			bad("null is not allowed")
		}
		return errs
	}
	switch s["type"] {
	case "object":
		obj, ok := value.(map[string]any)
		if !ok {
			bad("want an object, got %T", value)
			return errs
		}
		props, _ := s["properties"].(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					bad("unexpected property %q", k)
				}
				continue
			}
			errs = append(errs, v.check(path+"."+k, ps, obj[k])...)
		}
	case "array":
		arr, ok := value.([]any)
		if !ok {
			bad("want an array, got %T", value)
			return errs
		}
		for i, item := range arr {
			errs = append(errs, v.check(fmt.Sprintf("%s[%d]", path, i), s["items"].(map[string]any), item)...)
		}
	case "string":
		str, ok := value.(string)
		if !ok {
			bad("want a string, got %T", value)
			return errs
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len(str)) > n {
			bad("longer than %v", n)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("%q does not match %s", str, p)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				bad("%q is not a date-time", str)
			}
		}
	case "integer", "number":
		n, ok := value.(float64)
		if !ok {
			bad("want a number, got %T", value)
			return errs
		}
		if s["type"] == "integer" && n != math.Trunc(n) {
			bad("%v is not an integer", n)
		}
		if lo, ok := s["minimum"].(float64); ok && n < lo {
			bad("%v is below the minimum %v", n, lo)
		}
		if hi, ok := s["maximum"].(float64); ok && n > hi {
			bad("%v is above the maximum %v", n, hi)
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			bad("want a boolean, got %T", value)
		}
	case nil:
	default:
		bad("unknown type %v", s["type"])
	}
	if obj, ok := value.(map[string]any); ok {
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				bad("missing required %q", r)
			}
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, value) {
		bad("%v is not one of %v", value, enum)
	}
	if alts, ok := s["oneOf"].([]any); ok {
		matched := 0
		for _, alt := range alts {
			if len(v.check(path, alt.(map[string]any), value)) == 0 {
				matched++
			}
		}
		if matched != 1 {
			bad("matches %d of the oneOf schemas, want exactly 1", matched)
		}
	}
	return errs
}

func asList(v any) []any { l, _ := v.([]any); return l }

func loadSpec(t *testing.T) (*validator, map[string]any) {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(OpenAPI(), &doc))
	require.Equal(t, "3.0.3", doc["openapi"])
	op := doc["paths"].(map[string]any)["/v1/runbook_audits"].(map[string]any)["get"].(map[string]any)
	require.Equal(t, "listRunbookAudits", op["operationId"])
	return &validator{doc: doc}, op
}

// validate checks a recorded response against the operation's response
// for its status.
func (v *validator) validate(t *testing.T, op map[string]any, name string, res response) {
	t.Helper()
	r, ok := op["responses"].(map[string]any)[strconv.Itoa(res.status)].(map[string]any)
	require.True(t, ok, "%s: status %d is not documented", name, res.status)
	headers, _ := r["headers"].(map[string]any)
	for h := range headers {
		require.NotEmpty(t, res.header.Get(h), "%s: documented header %s missing", name, h)
	}
	mt := r["content"].(map[string]any)[res.header.Get("Content-Type")]
	require.NotNil(t, mt, "%s: content type %q is not documented", name, res.header.Get("Content-Type"))
	var body any
	require.NoError(t, json.Unmarshal(res.body, &body), name)
	errs := v.check("body", mt.(map[string]any)["schema"].(map[string]any), body)
	require.Empty(t, errs, "%s: response does not match the OpenAPI document:\n%s\n%s", name, strings.Join(errs, "\n"), res.body)
}

func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	v, op := loadSpec(t)
	e := setup(t, nil)
	token := e.bot(t, 1)
	f := writeFixture(t, e)
	e.settle(t)
	person, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 1, PrincipalType: PrincipalUser})
	require.NoError(t, err)
	notEnabled, _, err := IssueToken(e.ctx, e.db, TokenSpec{AccountID: 9})
	require.NoError(t, err)

	cases := []struct {
		name, method, token, query string
		status                     int
	}{
		{"first page", "GET", token, "", 200},
		{"second page", "GET", token, "per_page=3&page=2", 200},
		{"past the end", "GET", token, "page=9", 200},
		{"filtered", "GET", token, "runbook_id=" + f.rbA.ID + "&action=update&sort=asc", 200},
		{"poll start", "GET", token, "after_id=0&per_page=2", 200},
		{"poll empty", "GET", token, "after_id=0&user_id=nobody", 200},
		{"bad parameter", "GET", token, "per_page=1000", 400},
		{"no token", "GET", "", "", 401},
		{"not a bot", "GET", person, "", 403},
		{"not enabled", "GET", notEnabled, "", 403},
		{"POST", "POST", token, "", 405},
	}
	for _, c := range cases {
		res := e.do(t, c.method, c.token, c.query)
		require.Equal(t, c.status, res.status, "%s: %s", c.name, res.body)
		v.validate(t, op, c.name, res)
	}
	// A poll continued with the cursor returned.
	first := e.list(t, token, "after_id=0&per_page=2")
	res := e.get(t, token, "cursor="+first.Cursor.Next)
	v.validate(t, op, "poll with cursor", res)

	// The validator is not vacuous.
	bad := map[string]any{"data": []any{map[string]any{"id": 1.5}}, "pagination": map[string]any{}}
	require.NotEmpty(t, v.check("body", map[string]any{"$ref": "#/components/schemas/ListResponse"}, bad))
}

// The document lists exactly the parameters the parser accepts, with the
// limits it enforces.
func TestOpenAPIParameters(t *testing.T) {
	t.Parallel()
	_, op := loadSpec(t)
	var names []string
	for _, p := range op["parameters"].([]any) {
		pm := p.(map[string]any)
		names = append(names, pm["name"].(string))
		s := pm["schema"].(map[string]any)
		switch pm["name"] {
		case "per_page":
			require.Equal(t, 100.0, s["maximum"])
			require.Equal(t, 20.0, s["default"])
		case "auditable_type":
			require.Equal(t, []any{runbooks.TypeStep, runbooks.TypeRunbook}, s["enum"])
		}
	}
	require.ElementsMatch(t, slices.Collect(maps.Keys(knownParams)), names)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/v1/runbook_audits/", e.h)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/runbook_audits/openapi.json", nil))
	require.Equal(t, 200, w.Code)
	require.JSONEq(t, string(OpenAPI()), w.Body.String())
}
