package runbooks

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/gormaudit/gormaudit/internal/dialect"
)

// JSON is a JSON document stored in a jsonb column on PostgreSQL and a text
// column on SQLite. It appears as nested JSON, not as a string, both in API
// responses and in audited_changes. A nil JSON is SQL NULL.
type JSON json.RawMessage

// Value implements driver.Valuer.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return nil, nil
	}
	if !json.Valid(j) {
		return nil, errors.New("runbooks: JSON value is not valid JSON")
	}
	return string(j), nil
}

// Scan implements sql.Scanner.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case string:
		*j = JSON(v)
	case []byte:
		*j = append(JSON(nil), v...)
	default:
		return fmt.Errorf("runbooks: scan JSON from %T", src)
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON implements json.Unmarshaler. A JSON null becomes a nil JSON.
func (j *JSON) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*j = nil
		return nil
	}
	if !json.Valid(b) {
		return errors.New("runbooks: invalid JSON")
	}
	*j = append(JSON(nil), b...)
	return nil
}

// GormDataType tells gorm, and the audit plugin, that the column holds JSON.
func (JSON) GormDataType() string { return "json" }

// GormDBDataType implements schema.GormDataTypeInterface for migrations.
func (JSON) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	return dialect.Of(db).JSONType()
}

// Duration is a time.Duration stored and serialised as an ISO 8601
// duration, such as "PT0S" or "PT1H30M".
type Duration time.Duration

// String renders d in ISO 8601: hours, minutes and seconds (with a fraction
// when needed) after "PT"; zero is "PT0S".
func (d Duration) String() string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	v := time.Duration(d)
	if v < 0 {
		b.WriteByte('-')
		if v == math.MinInt64 {
			v = math.MaxInt64 // one nanosecond short, and representable
		} else {
			v = -v
		}
	}
	b.WriteString("PT")
	if h := v / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "H")
		v -= h * time.Hour
	}
	if m := v / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "M")
		v -= m * time.Minute
	}
	if v > 0 {
		s := strconv.FormatFloat(v.Seconds(), 'f', -1, 64)
		if v%time.Second != 0 {
			s = strconv.FormatInt(int64(v/time.Second), 10) + "." +
				strings.TrimRight(fmt.Sprintf("%09d", int64(v%time.Second)), "0")
		}
		b.WriteString(s + "S")
	}
	return b.String()
}

// ParseDuration parses an ISO 8601 duration made of weeks, days, hours,
// minutes and seconds ("P1DT2H", "PT0.5S", "-PT15M"). Years and months have
// no fixed length and are rejected.
func ParseDuration(s string) (Duration, error) {
	bad := func(why string) (Duration, error) {
		return 0, fmt.Errorf("runbooks: invalid ISO 8601 duration %q: %s", s, why)
	}
	rest, neg := strings.CutPrefix(s, "-")
	rest, ok := strings.CutPrefix(rest, "P")
	if !ok {
		return bad(`must start with "P"`)
	}
	if rest == "" || rest == "T" || strings.HasSuffix(rest, "T") {
		return bad("no components")
	}
	// Components must appear in this order, each at most once; W and D
	// before the "T", H, M and S after it.
	const order = "WDHMS"
	scales := [...]float64{float64(7 * 24 * time.Hour), float64(24 * time.Hour),
		float64(time.Hour), float64(time.Minute), float64(time.Second)}
	var total float64
	inTime, next := false, 0
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return bad(`"T" repeated`)
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return bad("expected a number followed by a unit")
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return bad("bad number " + rest[:i])
		}
		unit := rest[i]
		if unit == 'Y' || (unit == 'M' && !inTime) {
			return bad("years and months have no fixed length")
		}
		u := strings.IndexByte(order, unit)
		if u < 0 || u < next || (u >= 2) != inTime {
			return bad(fmt.Sprintf("unexpected %q", rest[i]))
		}
		next = u + 1
		total += n * scales[u]
		rest = rest[i+1:]
	}
	if total > math.MaxInt64 {
		return bad("out of range")
	}
	d := Duration(math.Round(total))
	if neg {
		d = -d
	}
	return d, nil
}

// Value implements driver.Valuer: the ISO 8601 text.
func (d Duration) Value() (driver.Value, error) { return d.String(), nil }

// Scan implements sql.Scanner.
func (d *Duration) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("runbooks: scan Duration from %T", src)
	}
	p, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// MarshalJSON implements json.Marshaler: the ISO 8601 text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("runbooks: duration must be an ISO 8601 string: %w", err)
	}
	p, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// GormDBDataType implements schema.GormDataTypeInterface for migrations.
func (Duration) GormDBDataType(*gorm.DB, *schema.Field) string { return "varchar(64)" }
