package difftest

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/gormaudit/gormaudit/internal/jsontext"
	"math"
	"strconv"
	"time"
)

// The oracle compares values in one canonical text form per column kind, so
// that a database value and its audited_changes rendering are equal exactly
// when the audit records the value the database holds: nothing is rounded,
// trimmed or repaired on either side. SQL NULL is "NULL"; a JSON document
// that is JSON null is "j:null", which no audited value decodes to (the
// audit format cannot tell it from SQL NULL).
const null = "NULL"

// dest returns a scan destination for a column of kind k.
func dest(k kind) any {
	switch k {
	case kBytes:
		return new([]byte)
	case kInt:
		return new(sql.NullInt64)
	case kFloat:
		return new(sql.NullFloat64)
	case kBool:
		return new(sql.NullBool)
	case kTime:
		return new(sql.NullTime)
	default: // kString, kJSON
		return new(sql.NullString)
	}
}

// fromDB renders a scanned destination of kind k canonically.
func fromDB(k kind, d any) string {
	switch v := d.(type) {
	case *[]byte:
		if *v == nil {
			return null
		}
		return "x:" + hex.EncodeToString(*v)
	case *sql.NullInt64:
		if !v.Valid {
			return null
		}
		return "i:" + strconv.FormatInt(v.Int64, 10)
	case *sql.NullFloat64:
		if !v.Valid {
			return null
		}
		return canonFloat(v.Float64)
	case *sql.NullBool:
		if !v.Valid {
			return null
		}
		return "b:" + strconv.FormatBool(v.Bool)
	case *sql.NullTime:
		if !v.Valid {
			return null
		}
		return canonTime(v.Time)
	case *sql.NullString:
		if !v.Valid {
			return null
		}
		if k == kJSON {
			return canonJSON([]byte(v.String))
		}
		return "s:" + strconv.Quote(v.String)
	}
	panic(fmt.Sprintf("difftest: no canonical form for %T", d))
}

// fromAudit renders one audited_changes value of a column of kind k
// canonically; a value of the wrong JSON type renders as "?" and its text,
// which equals no database value.
func fromAudit(k kind, raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return null
	}
	bad := "?" + string(raw)
	switch k {
	case kJSON:
		return canonJSON(raw)
	case kString, kBytes, kTime:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return bad
		}
		switch k {
		case kBytes:
			// Bytes are recorded in standard base64 (the audit package's
			// documented encoding).
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return bad
			}
			return "x:" + hex.EncodeToString(b)
		case kTime:
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad
			}
			return canonTime(t)
		}
		return "s:" + strconv.Quote(s)
	case kInt:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return bad
		}
		return "i:" + strconv.FormatInt(n, 10)
	case kFloat:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || raw[0] == '"' {
			return bad
		}
		return canonFloat(f)
	case kBool:
		switch string(raw) {
		case "true", "false":
			return "b:" + string(raw)
		}
	}
	return bad
}

func canonFloat(f float64) string {
	if math.IsNaN(f) {
		return "f:NaN"
	}
	return "f:" + strconv.FormatFloat(f, 'g', -1, 64)
}

func canonTime(t time.Time) string { return "t:" + t.UTC().Format(time.RFC3339Nano) }

// canonJSON renders a JSON document by meaning (object keys sorted,
// whitespace dropped). A document Go cannot decode (deeper than
// encoding/json's limit, or invalid) renders as its length and a hash of its
// bytes outside strings with whitespace removed.
func canonJSON(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err == nil {
		out, err := json.Marshal(v)
		if err == nil {
			return "j:" + string(out)
		}
	}
	s := stripSpace(b)
	sum := sha256.Sum256(s)
	return fmt.Sprintf("j!%d bytes sha256 %x", len(s), sum[:8])
}

// stripSpace removes JSON whitespace outside strings.
func stripSpace(b []byte) []byte {
	out := make([]byte, 0, len(b))
	jsontext.Bytes(b, func(c byte, outside bool) {
		if outside && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			return
		}
		out = append(out, c)
	})
	return out
}
