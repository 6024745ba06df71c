// Package httpapi serves the audit log over HTTP: an embeddable handler for
// the runbook audit endpoint (GET /v1/runbook_audits).
package httpapi
