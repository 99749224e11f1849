package plainyaml

import (
	"bytes"
	"strings"
)

// maxDepth bounds the nesting of collections; a deeper document is
// declined (and left to the full parser's own limits).
const maxDepth = 64

// maxKey bounds a key's length, quotes included: YAML allows an implicit
// key of at most 1024 characters, and policies have no long ones.
const maxKey = 256

// ToJSON appends the JSON form of the YAML document doc to dst. ok is
// false when doc uses YAML outside the subset, or is not valid YAML; the
// caller then parses doc with a full parser, and what was appended to dst
// is to be dropped.
func ToJSON(dst, doc []byte) (out []byte, ok bool) {
	p := parser{out: dst}
	if !p.split(doc) || len(p.lines) == 0 {
		return dst, false
	}
	if !p.block(p.lines[0].indent, 0) || p.i != len(p.lines) {
		return dst, false
	}
	return p.out, true
}

// line is one line of the document that holds more than a comment.
type line struct {
	indent int    // columns of leading spaces
	text   []byte // the rest, without trailing spaces
	next   int    // where the line after it starts in the document
}

type parser struct {
	doc   []byte
	lines []line
	i     int // the line being read
	out   []byte
}

// split cuts doc into its lines that hold more than a comment, declining
// bytes outside the subset and document markers.
func (p *parser) split(doc []byte) bool {
	for _, b := range doc {
		if b >= 0x7f || (b < ' ' && b != '\n') {
			return false
		}
	}
	p.doc = doc
	for off := 0; off < len(doc); {
		l := doc[off:]
		if i := bytes.IndexByte(l, '\n'); i >= 0 {
			l = l[:i]
			off += i + 1
		} else {
			off = len(doc)
		}
		if bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")) {
			return false
		}
		n := 0
		for n < len(l) && l[n] == ' ' {
			n++
		}
		t := bytes.TrimRight(l[n:], " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		p.lines = append(p.lines, line{indent: n, text: t, next: off})
	}
	return true
}

// block reads the block collection that starts on the current line, whose
// indentation is indent.
func (p *parser) block(indent, depth int) bool {
	if depth > maxDepth {
		return false
	}
	if isItem(p.lines[p.i].text) {
		return p.sequence(indent, depth)
	}
	return p.mapping(indent, depth)
}

// isItem reports whether t starts a block sequence item.
func isItem(t []byte) bool {
	return t[0] == '-' && (len(t) == 1 || t[1] == ' ')
}

// mapping reads a block mapping whose keys stand at column indent.
func (p *parser) mapping(indent, depth int) bool {
	p.out = append(p.out, '{')
	var keys keySet
	first := true
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent < indent {
			break
		}
		if l.indent > indent || isItem(l.text) {
			return false
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return false
		}
		if !keys.add(key) {
			return false
		}
		if !first {
			p.out = append(p.out, ',')
		}
		first = false
		p.out = appendString(p.out, key)
		p.out = append(p.out, ':')
		if !p.value(rest, indent, depth, true) {
			return false
		}
	}
	p.out = append(p.out, '}')
	return true
}

// sequence reads a block sequence whose dashes stand at column indent.
func (p *parser) sequence(indent, depth int) bool {
	p.out = append(p.out, '[')
	first := true
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent != indent || !isItem(l.text) {
			if l.indent > indent {
				return false
			}
			break
		}
		if !first {
			p.out = append(p.out, ',')
		}
		first = false
		rest := bytes.TrimLeft(l.text[1:], " ")
		if len(rest) > 0 && rest[0] != '#' && !isItem(rest) {
			if _, _, ok := splitKey(rest); ok {
				// A mapping that starts on the item's line: its keys
				// stand where this one does.
				col := indent + len(l.text) - len(rest)
				p.lines[p.i] = line{indent: col, text: rest, next: l.next}
				if !p.mapping(col, depth+1) {
					return false
				}
				continue
			}
		}
		if !p.value(rest, indent, depth, false) {
			return false
		}
	}
	p.out = append(p.out, ']')
	return true
}

// value reads what follows a key's colon or an item's dash on the
// current line (rest), and the lines below it that belong to it, for a
// key or dash at column indent. A key's value may be a sequence at the
// key's own indentation.
func (p *parser) value(rest []byte, indent, depth int, isKey bool) bool {
	if len(rest) > 0 && rest[0] == '|' {
		return p.literal(rest, indent)
	}
	p.i++
	if len(rest) == 0 || rest[0] == '#' {
		if p.i < len(p.lines) {
			next := p.lines[p.i]
			if next.indent > indent || (isKey && next.indent == indent && isItem(next.text)) {
				return p.block(next.indent, depth+1)
			}
		}
		p.out = append(p.out, "null"...)
		return true
	}
	if !p.inline(rest, depth) {
		return false
	}
	// A more indented line would continue a scalar, or be an error.
	return p.i == len(p.lines) || p.lines[p.i].indent <= indent
}

// literal reads a literal block scalar ("|" or "|-", the way PEM keys
// are written) whose header is rest, on the current line, for a key or
// dash at column indent. Its content is indented more than that, by as
// much as its first line is; it ends at the first line indented less.
// Declined: other chomping or an explicit indentation, blank lines before
// the first line of content or holding more spaces than the content's
// indentation, no content, and content that does not end in a line break.
func (p *parser) literal(rest []byte, indent int) bool {
	clip := true
	h := rest[1:]
	if len(h) > 0 && h[0] == '-' {
		clip, h = false, h[1:]
	}
	if !isEnd(h) {
		return false
	}
	var b []byte
	n, blanks, off := -1, 0, p.lines[p.i].next
	for off < len(p.doc) {
		l := p.doc[off:]
		i := bytes.IndexByte(l, '\n')
		if i < 0 {
			return false // content that does not end in a line break
		}
		l = l[:i]
		sp := 0
		for sp < len(l) && l[sp] == ' ' {
			sp++
		}
		if sp == len(l) { // a blank line
			if n < 0 || sp > n {
				return false
			}
			blanks++
			off += i + 1
			continue
		}
		if n < 0 {
			if sp <= indent {
				return false // no content
			}
			n = sp
		}
		if sp < n {
			break
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		for ; blanks > 0; blanks-- {
			b = append(b, '\n')
		}
		b = append(b, l[n:]...)
		off += i + 1
	}
	if n < 0 {
		return false
	}
	if clip {
		b = append(b, '\n')
	}
	p.out = appendString(p.out, string(b))
	for p.i < len(p.lines) && p.lines[p.i].next <= off {
		p.i++
	}
	// A line after it indented more than its key would be an error.
	return p.i == len(p.lines) || p.lines[p.i].indent <= indent
}

// inline reads a value that ends on its line: a flow collection, a quoted
// scalar or a plain scalar, with perhaps a comment after it.
func (p *parser) inline(t []byte, depth int) bool {
	switch t[0] {
	case '{', '[', '"', '\'':
		n, ok := p.flowValue(t, depth)
		return ok && isEnd(t[n:])
	}
	if i := bytes.Index(t, []byte(" #")); i >= 0 {
		t = bytes.TrimRight(t[:i], " ")
	}
	if bytes.Contains(t, []byte(": ")) || t[len(t)-1] == ':' {
		return false
	}
	return p.scalar(t)
}

// isEnd reports whether t, after a value, holds only spaces and perhaps a
// comment.
func isEnd(t []byte) bool {
	if len(t) == 0 {
		return true
	}
	s := bytes.TrimLeft(t, " ")
	return len(s) == 0 || (s[0] == '#' && len(s) < len(t))
}

// flowValue reads one value in flow context from the start of t (a flow
// collection, a quoted scalar, or a plain scalar ended by a flow
// indicator) and says how many bytes it took.
func (p *parser) flowValue(t []byte, depth int) (int, bool) {
	switch t[0] {
	case '{', '[':
		return p.flow(t, depth+1)
	case '"', '\'':
		s, n, ok := quoted(t)
		if !ok {
			return 0, false
		}
		p.out = appendString(p.out, s)
		return n, true
	}
	n := 0
	for n < len(t) && t[n] != ',' && t[n] != '}' && t[n] != ']' {
		switch t[n] {
		case ':', '#', '[', '{', '?', '"', '\'':
			return 0, false
		}
		n++
	}
	s := bytes.TrimRight(t[:n], " ")
	if len(s) == 0 || !p.scalar(s) {
		return 0, false
	}
	return n, true
}

// flow reads a flow mapping or sequence that starts and ends within t.
func (p *parser) flow(t []byte, depth int) (int, bool) {
	if depth > maxDepth {
		return 0, false
	}
	open := t[0]
	closing := byte('}')
	if open == '[' {
		closing = ']'
	}
	p.out = append(p.out, open)
	i := skipSpaces(t, 1)
	if i < len(t) && t[i] == closing {
		p.out = append(p.out, closing)
		return i + 1, true
	}
	var keys keySet
	for {
		if i >= len(t) {
			return 0, false
		}
		if open == '{' {
			key, n, ok := flowKey(t[i:])
			if !ok {
				return 0, false
			}
			if !keys.add(key) {
				return 0, false
			}
			p.out = appendString(p.out, key)
			p.out = append(p.out, ':')
			i = skipSpaces(t, i+n)
			if i >= len(t) {
				return 0, false
			}
		}
		n, ok := p.flowValue(t[i:], depth)
		if !ok {
			return 0, false
		}
		i = skipSpaces(t, i+n)
		if i >= len(t) {
			return 0, false
		}
		switch t[i] {
		case closing:
			p.out = append(p.out, closing)
			return i + 1, true
		case ',':
			i = skipSpaces(t, i+1)
			if i >= len(t) || t[i] == closing || t[i] == ',' {
				return 0, false // a trailing or empty entry: the full parser's call
			}
			p.out = append(p.out, ',')
		default:
			return 0, false
		}
	}
}

// keySet holds the keys of one mapping, to refuse duplicates ignoring
// case. A duplicate is the YAML parser's to refuse. Keys that differ only
// in case are declined too: encoding/json fills one field from both, and
// the last wins, but sigs.k8s.io/yaml gives them to it in sorted order,
// not in the document's.
type keySet struct {
	few  []string            // the first keys, compared one by one
	many map[string]struct{} // all of them, lower-cased, past maxFewKeys
}

// maxFewKeys is how many keys a keySet compares one by one before it
// indexes them, so that a large mapping costs no more than linear time.
const maxFewKeys = 16

// add records key, and reports false when the set holds it already,
// ignoring case.
func (s *keySet) add(key string) bool {
	if s.many == nil {
		for _, k := range s.few {
			if strings.EqualFold(k, key) {
				return false
			}
		}
		if s.few = append(s.few, key); len(s.few) <= maxFewKeys {
			return true
		}
		s.many = make(map[string]struct{}, 2*len(s.few))
		for _, k := range s.few[:len(s.few)-1] {
			s.many[strings.ToLower(k)] = struct{}{}
		}
	}
	lower := strings.ToLower(key)
	if _, dup := s.many[lower]; dup {
		return false
	}
	s.many[lower] = struct{}{}
	return true
}

func skipSpaces(t []byte, i int) int {
	for i < len(t) && t[i] == ' ' {
		i++
	}
	return i
}

// splitKey reads a block mapping key and its colon from the start of t,
// and gives the rest of the line after the spaces that follow.
func splitKey(t []byte) (key string, rest []byte, ok bool) {
	var n int
	switch t[0] {
	case '"', '\'':
		key, n, ok = quoted(t)
		if !ok {
			return "", nil, false
		}
	default:
		n = keyLen(t)
		if n == 0 {
			return "", nil, false
		}
		key = string(t[:n])
	}
	if n > maxKey || n >= len(t) || t[n] != ':' || (n+1 < len(t) && t[n+1] != ' ') {
		return "", nil, false
	}
	return key, bytes.TrimLeft(t[n+1:], " "), true
}

// flowKey reads a flow mapping key, its colon and the space after it.
func flowKey(t []byte) (key string, n int, ok bool) {
	switch t[0] {
	case '"', '\'':
		key, n, ok = quoted(t)
		if !ok {
			return "", 0, false
		}
	default:
		n = keyLen(t)
		if n == 0 {
			return "", 0, false
		}
		key = string(t[:n])
	}
	if n > maxKey || n+1 >= len(t) || t[n] != ':' || t[n+1] != ' ' {
		return "", 0, false
	}
	return key, n + 2, true
}

// keyLen is the length of the plain key at the start of t: a word that
// YAML reads as a string (letters, digits, "_", ".", "-" and "/", starting
// with a letter or "_"), or 0.
func keyLen(t []byte) int {
	if !isLetter(t[0]) && t[0] != '_' {
		return 0
	}
	n := 1
	for n < len(t) && (isLetter(t[n]) || isDigit(t[n]) || t[n] == '_' || t[n] == '.' || t[n] == '-' || t[n] == '/') {
		n++
	}
	if resolvesOtherwise(t[:n]) {
		return 0
	}
	return n
}

// scalar appends the JSON form of the plain scalar s, or declines it.
func (p *parser) scalar(s []byte) bool {
	switch string(s) {
	case "true", "false", "null":
		p.out = append(p.out, s...)
		return true
	}
	switch c := s[0]; {
	case isDigit(c):
		// A decimal integer: "0", or no leading zero (YAML 1.1 reads
		// that as octal), and few enough digits to be exact in JSON.
		if len(s) > 15 || (c == '0' && len(s) > 1) {
			return false
		}
		for _, d := range s {
			if !isDigit(d) {
				return false
			}
		}
		p.out = append(p.out, s...)
		return true
	case isLetter(c) || c == '_' || c == '/' || c == '$' || c == '^' || c == '(':
	default:
		return false
	}
	if resolvesOtherwise(s) {
		return false
	}
	p.out = appendString(p.out, string(s))
	return true
}

// resolvesOtherwise reports whether YAML 1.1 reads the plain scalar s,
// which starts with a letter, as something other than a string.
func resolvesOtherwise(s []byte) bool {
	switch string(s) {
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"true", "True", "TRUE", "false", "False", "FALSE",
		"on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL":
		return true
	}
	return false
}

// quoted reads the single- or double-quoted scalar at the start of t,
// which must end on its line, and says how many bytes it took. Double
// quotes take the escapes \\, \", \n and \t; the others are declined
// (YAML 1.1's parser refuses some that JSON has, such as \/).
func quoted(t []byte) (s string, n int, ok bool) {
	q := t[0]
	var b []byte
	for i := 1; i < len(t); i++ {
		c := t[i]
		switch {
		case q == '\'' && c == '\'':
			if i+1 < len(t) && t[i+1] == '\'' {
				b = append(b, '\'')
				i++
				continue
			}
			return string(b), i + 1, true
		case q == '"' && c == '"':
			return string(b), i + 1, true
		case q == '"' && c == '\\':
			if i+1 >= len(t) {
				return "", 0, false
			}
			i++
			switch t[i] {
			case '\\', '"':
				b = append(b, t[i])
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			default:
				return "", 0, false
			}
		default:
			b = append(b, c)
		}
	}
	return "", 0, false // ends on a later line
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c < ' ':
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
