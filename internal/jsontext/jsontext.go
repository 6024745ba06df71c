// Package jsontext reads JSON text byte by byte, telling the bytes inside
// strings from the structure around them, without decoding it: so that a
// document of any depth (encoding/json stops at 10,000 levels) can still be
// measured or compared.
package jsontext

// Bytes calls visit for every byte of the JSON text b, with outside true for
// the bytes outside strings (structure, numbers, literals, whitespace) and
// false for those of a string, its quotes included.
func Bytes(b []byte, visit func(c byte, outside bool)) {
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			visit(c, false)
		case c == '"':
			inString = true
			visit(c, false)
		default:
			visit(c, true)
		}
	}
}
