package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gormaudit/gormaudit/httpapi/apitype"
)

// Client reads the runbook audit endpoint of an httpapi.Handler over HTTP
// with a bot token. Create it with [New]; it is safe for concurrent use.
type Client struct {
	endpoint *url.URL
	token    string
	hc       *http.Client
}

// Options configures a [Client]. The zero value, like a nil *Options, means
// every default.
type Options struct {
	// HTTPClient sends the requests. Defaults to a client with a 30
	// second timeout.
	HTTPClient *http.Client
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.HTTPClient == nil {
		v.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return v
}

// New returns a client of the endpoint at endpoint, the full URL the
// handler is mounted at (such as "https://example.com/v1/runbook_audits"),
// authenticating with the bot token. A nil opts means the defaults. The
// token is sent only in the Authorization header and never appears in
// errors.
func New(endpoint, token string, opts *Options) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("client: New: endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: New: endpoint %q is not an absolute http(s) URL", endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: New: endpoint %q must have no query or fragment", endpoint)
	}
	if token == "" {
		return nil, errors.New("client: New: token is empty")
	}
	o := opts.withDefaults()
	return &Client{endpoint: u, token: token, hc: o.HTTPClient}, nil
}

// APIError is a response of the endpoint other than 200, with its JSON
// error body ([apitype.ErrorBody]).
type APIError struct {
	// StatusCode is the HTTP status, such as 400 or 503.
	StatusCode int
	// Code is the error body's machine-readable code, such as
	// "invalid_parameter", or "" when the body was not the endpoint's JSON
	// error.
	Code string
	// Message is the error body's text for people.
	Message string
	// Parameter names the offending query parameter of a 400.
	Parameter string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("client: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("client: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// decodeAPIError reads an error body: the current [apitype.ErrorBody], or the
// {"error": {"code", "message", "parameter"}} of earlier versions of the
// endpoint.
func decodeAPIError(status int, b []byte) *APIError {
	ae := &APIError{StatusCode: status}
	var body struct {
		apitype.ErrorBody
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ae
	}
	var legacy struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Parameter string `json:"parameter"`
	}
	if len(body.Error) > 0 && body.Error[0] == '{' && json.Unmarshal(body.Error, &legacy) == nil {
		ae.Code, ae.Message, ae.Parameter = legacy.Code, legacy.Message, legacy.Parameter
		return ae
	}
	ae.Code, ae.Message, ae.Parameter = body.Code, body.Message, body.Parameter
	return ae
}

// maxResponse bounds a response body read by the client.
const maxResponse = 64 << 20

func (c *Client) get(ctx context.Context, v url.Values, out any) error {
	u := *c.endpoint
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", c.endpoint.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("client: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return decodeAPIError(resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("client: response is %q, not JSON", ct)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: decode response: %w", err)
	}
	return nil
}

// asAPIError is errors.As for *APIError, as an expression.
func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}
