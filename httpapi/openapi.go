package httpapi

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document of the endpoint, as JSON. The
// handler also serves it, without authentication, at its own path followed
// by "/openapi.json" when the service's mux routes that path to it.
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }
