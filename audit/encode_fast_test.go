package audit

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// fastDoc is a JSON document column type like runbooks.JSON: a Valuer
// whose Value is its text (nil when empty), with a JSON form of its own.
type fastDoc []byte

func (d fastDoc) Value() (driver.Value, error) {
	if len(d) == 0 {
		return nil, nil
	}
	return string(d), nil
}

func (d fastDoc) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("null"), nil
	}
	return d, nil
}

// fastCode renders itself: the encoder must not render it by its kind.
type fastCode string

func (c fastCode) MarshalJSON() ([]byte, error) { return json.Marshal("code:" + string(c)) }

// fastText is rendered by encoding/json through MarshalText.
type fastText int

func (t fastText) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("t%d", int(t))), nil }

// fastWait is a Valuer of a Valuer, which the encoder refuses.
type fastWait struct{}

func (fastWait) Value() (driver.Value, error) { return fastDoc("1"), nil }

// fastBroken is a Valuer that fails.
type fastBroken struct{}

func (fastBroken) Value() (driver.Value, error) { return nil, errors.New("broken") }

type fastName string

// fastValues are the values the fast paths are checked on: every kind of
// value the encoder accepts or refuses, and those it renders in a way of
// their own.
func fastValues() []any {
	deep := strings.Repeat("[", MaxNestingDepth+1) + strings.Repeat("]", MaxNestingDepth+1)
	edge := strings.Repeat("[", MaxNestingDepth) + strings.Repeat("]", MaxNestingDepth)
	s := "text"
	var nilString *string
	var nilTime *time.Time
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	values := []any{
		nil, nilString, &s, nilTime, &at, at, at.UTC(), time.Time{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		gorm.DeletedAt{}, gorm.DeletedAt{Time: at, Valid: true}, gorm.DeletedAt{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), Valid: true},
		sql.NullTime{}, sql.NullTime{Time: at, Valid: true},
		true, false, 0, -1, int64(math.MaxInt64), int32(-7), int8(3), uint(9), uint64(math.MaxUint64), uint8(255),
		0.0, math.Copysign(0, -1), 1.5, float32(2.25), math.NaN(), math.Inf(1), math.Inf(-1), 1e21,
		"", "plain", "quote\"", "back\\slash", "<html>", "a&b", "tab\t", "new\nline", "é", "\u2028", "\x7f", "bad\xff",
		fastName("named"), fastName("bad\xff"), fastCode("x"), fastText(3), fastWait{}, fastBroken{},
		[]byte(nil), []byte{}, []byte("bytes\x00\xff"), fastDoc(nil), fastDoc(`{"a":1}`), fastDoc(`null`),
		json.RawMessage(nil), json.RawMessage(`{"a":[1,2]}`), json.RawMessage(` null `), json.RawMessage(`{bad`),
		json.RawMessage(deep), json.RawMessage(edge), json.RawMessage("\"\xff\""), fastDoc(deep), fastDoc(edge),
		fastDoc(" \u00a0{\"b\":true}\n"), fastDoc("\u00a0null"), "[1, 2]", " {} ", "null", deep, []int{1, 2},
		map[string]any{"k": 1}, struct{ A int }{1},
	}
	return values
}

// TestFastPathsAgreeWithTheEncoder requires each fast path to answer only
// when it agrees with encodeValue: recordable only for values encodeValue
// accepts at a depth recordField accepts, appendPlain only with
// encodeValue's bytes, and sameValue only for values encodeValue renders
// alike.
func TestFastPathsAgreeWithTheEncoder(t *testing.T) {
	values := fastValues()
	encode := func(v any, jsonColumn bool) (json.RawMessage, error) {
		b, err := encodeValue(v, jsonColumn)
		if err == nil && nesting(b) > MaxNestingDepth {
			err = tooDeep(nesting(b))
		}
		return b, err
	}
	fast := 0
	for i, v := range values {
		for _, jsonColumn := range []bool{false, true} {
			name := fmt.Sprintf("value %d (%T %#v) json=%v", i, v, v, jsonColumn)
			want, err := encode(v, jsonColumn)
			if recordable(v, jsonColumn) {
				fast++
				require.NoError(t, err, name)
			}
			if jsonColumn {
				continue
			}
			if got, ok := appendPlain([]byte("prefix"), v); ok {
				require.NoError(t, err, name)
				require.Equal(t, "prefix"+string(want), string(got), name)
			} else {
				require.Equal(t, "prefix", string(got), name)
			}
		}
		for j, w := range values {
			if !sameValue(v, w) {
				continue
			}
			for _, jsonColumn := range []bool{false, true} {
				a, aErr := encodeValue(v, jsonColumn)
				b, bErr := encodeValue(w, jsonColumn)
				require.Equal(t, aErr == nil, bErr == nil, "values %d and %d", i, j)
				require.True(t, bytes.Equal(a, b), "values %d and %d render %s and %s", i, j, a, b)
			}
		}
	}
	require.Greater(t, fast, len(values), "the fast path answers for most values")
	// The fast paths do answer for the values that are most common.
	for _, v := range []any{"Assign A Role", 42, int64(7), true, &s1, at1, gorm.DeletedAt{}, fastDoc(`{"role":{"label":"Commander"}}`)} {
		require.True(t, recordable(v, false) || recordable(v, true), "%#v", v)
	}
	for _, v := range []any{"Assign A Role", 42, true, &s1, at1, gorm.DeletedAt{}} {
		_, ok := appendPlain(nil, v)
		require.True(t, ok, "%#v", v)
	}
}

var (
	s1  = "step"
	at1 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
)

// FuzzFastPaths checks the fast paths against the encoder on arbitrary
// text, documents and numbers.
func FuzzFastPaths(f *testing.F) {
	f.Add("plain", []byte(`{"a":1}`), 1.5, int64(3))
	f.Add("bad\xff<&>", []byte(" null "), math.Copysign(0, -1), int64(-1))
	f.Fuzz(func(t *testing.T, s string, doc []byte, x float64, n int64) {
		for _, v := range []any{s, &s, fastName(s), doc, json.RawMessage(doc), fastDoc(doc), string(doc), x, n} {
			for _, jsonColumn := range []bool{false, true} {
				b, err := encodeValue(v, jsonColumn)
				if recordable(v, jsonColumn) {
					require.NoError(t, err)
					require.LessOrEqual(t, nesting(b), MaxNestingDepth)
				}
				if got, ok := appendPlain(nil, v); ok && !jsonColumn {
					require.NoError(t, err)
					require.Equal(t, string(b), string(got))
				}
			}
		}
		a, b := fastDoc(doc), fastDoc(s)
		if sameValue(a, b) {
			ea, _ := encodeValue(a, true)
			eb, _ := encodeValue(b, true)
			require.Equal(t, string(ea), string(eb))
		}
	})
}
