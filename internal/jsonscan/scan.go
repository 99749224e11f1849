// Package jsonscan reads a JSON text (RFC 8259) from memory in one pass,
// decoding only the values its caller asks for and checking the rest
// without building anything: the way to read the few fields a decision
// needs out of an AdmissionReview that carries a whole object.
//
// It accepts exactly the JSON texts that are valid with valid UTF-8
// strings; object names are case-sensitive. Duplicate names are the
// caller's to refuse, among the names it reads (see Names): the values it
// skips it does not interpret.
package jsonscan

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrSyntax is wrapped by every error about the input.
var ErrSyntax = errors.New("invalid JSON")

// MaxDepth bounds the nesting of arrays and objects.
const MaxDepth = 10000

// Scanner reads one JSON text. Its methods read the next value; on error
// the Scanner is spent.
type Scanner struct {
	b     []byte
	i     int
	depth int
}

// New returns a Scanner over b, which it does not copy or change.
func New(b []byte) *Scanner { return &Scanner{b: b} }

// Mark is a position to come back to.
type Mark struct{ i, depth int }

// Offset is the mark's position in the input.
func (m Mark) Offset() int { return m.i }

// Mark returns the current position.
func (s *Scanner) Mark() Mark { return Mark{s.i, s.depth} }

// Rewind goes back to a position marked before, to read its value again
// (with Skip, say, after a reader refused it).
func (s *Scanner) Rewind(m Mark) { s.i, s.depth = m.i, m.depth }

// Offset is the position of the next byte to read.
func (s *Scanner) Offset() int { return s.i }

// Bytes is the input from start to the current offset.
func (s *Scanner) Bytes(start int) []byte { return s.b[start:s.i] }

func (s *Scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, fmt.Sprintf(format, args...), s.i)
}

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Peek skips white space and returns the first byte of the next value:
// '{', '[', '"', 't', 'f', 'n', '-' or a digit in valid input; 0 at the
// end of input (or at a NUL byte: invalid).
func (s *Scanner) Peek() byte {
	s.ws()
	if s.i == len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// End checks that only white space is left.
func (s *Scanner) End() error {
	if s.ws(); s.i != len(s.b) {
		return s.errorf("data after the value")
	}
	return nil
}

// Null reads a null if that is what comes next.
func (s *Scanner) Null() (bool, error) {
	if s.Peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

func (s *Scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.errorf("invalid literal, want %s", lit)
	}
	s.i += len(lit)
	return nil
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	switch s.Peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, s.errorf("want a boolean")
}

// String reads a string and returns its value.
func (s *Scanner) String() (string, error) {
	v, err := s.StringBytes()
	return string(v), err
}

// StringBytes reads a string and returns its value, which shares the
// input's memory when it has no escapes (do not change it).
func (s *Scanner) StringBytes() ([]byte, error) {
	if s.Peek() != '"' {
		return nil, s.errorf("want a string")
	}
	start := s.i
	escaped, err := s.skipString()
	if err != nil {
		return nil, err
	}
	if !escaped {
		return s.b[start+1 : s.i-1], nil
	}
	v, err := jsontext.AppendUnquote(nil, s.b[start:s.i])
	if err != nil {
		return nil, s.errorf("%v", err)
	}
	return v, nil
}

// skipString reads a string at s.i, checking its escapes and UTF-8, and
// reports whether it has escapes.
func (s *Scanner) skipString() (escaped bool, err error) {
	s.i++ // the quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if err := s.escape(); err != nil {
				return false, err
			}
		case c < 0x20:
			return false, s.errorf("control character in string")
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 {
				return false, s.errorf("invalid UTF-8 in string")
			}
			s.i += size
		}
	}
	return false, s.errorf("unexpected end of input in string")
}

func (s *Scanner) escape() error {
	if s.i+1 >= len(s.b) {
		return s.errorf("unexpected end of input in string")
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return err
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return s.errorf("invalid UTF-16 surrogate in \\u escape")
		case 0xD800 <= r && r <= 0xDBFF: // the first half of a pair: the second must follow
			if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
				return s.errorf("invalid UTF-16 surrogate in \\u escape")
			}
			if r, err = s.hex4(); err != nil {
				return err
			}
			if r < 0xDC00 || r > 0xDFFF {
				return s.errorf("invalid UTF-16 surrogate in \\u escape")
			}
		}
		return nil
	}
	return s.errorf("invalid escape")
}

// hex4 reads a \uXXXX escape at s.i and returns its code unit.
func (s *Scanner) hex4() (rune, error) {
	if s.i+6 > len(s.b) {
		return 0, s.errorf("unexpected end of input in string")
	}
	var r rune
	for _, h := range s.b[s.i+2 : s.i+6] {
		switch {
		case '0' <= h && h <= '9':
			r = r<<4 | rune(h-'0')
		case 'a' <= h && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case 'A' <= h && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, s.errorf("invalid \\u escape")
		}
	}
	s.i += 6
	return r, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number reads a number at s.i.
func (s *Scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && isDigit(s.b[s.i]):
		s.digits()
	default:
		return s.errorf("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.i == len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("invalid number")
		}
		s.digits()
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.i == len(s.b) || !isDigit(s.b[s.i]) {
			return s.errorf("invalid number")
		}
		s.digits()
	}
	return nil
}

func (s *Scanner) digits() {
	for s.i < len(s.b) && isDigit(s.b[s.i]) {
		s.i++
	}
}

// Skip reads the next value, whatever it is, checking it.
func (s *Scanner) Skip() error {
	switch c := s.Peek(); c {
	case '{', '[':
		return s.composite(c, nil, nil)
	case '"':
		_, err := s.skipString()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if s.i == len(s.b) {
			return s.errorf("unexpected end of input")
		}
		if c == '-' || isDigit(c) {
			return s.number()
		}
		return s.errorf("invalid character %q", c)
	}
}

// Object reads an object, calling member with each name (unescaped;
// valid until member returns) and the Scanner at its value, which member
// must read.
func (s *Scanner) Object(member func(name []byte) error) error {
	return s.composite('{', member, nil)
}

// Array reads an array, calling elem with the Scanner at each element,
// which elem must read.
func (s *Scanner) Array(elem func() error) error {
	return s.composite('[', nil, elem)
}

// composite reads an object (open '{') or an array ('['), calling member
// (objects) with each unescaped name or elem (arrays) with the Scanner at
// each value, which they must read. With neither, each value is skipped
// (Skip: no closure per level, no names unescaped).
func (s *Scanner) composite(open byte, member func(name []byte) error, elem func() error) error {
	end, what := byte(']'), "array"
	if open == '{' {
		end, what = '}', "object"
	}
	if s.Peek() != open {
		return s.errorf("want an %s", what)
	}
	if s.depth++; s.depth > MaxDepth {
		return s.errorf("nested deeper than %d", MaxDepth)
	}
	s.i++
	if s.Peek() == end {
		s.i++
		s.depth--
		return nil
	}
	for {
		var name []byte
		if open == '{' {
			if s.Peek() != '"' {
				return s.errorf("want an object name")
			}
			var err error
			if member != nil {
				name, err = s.StringBytes()
			} else {
				_, err = s.skipString()
			}
			if err != nil {
				return err
			}
			if s.Peek() != ':' {
				return s.errorf("want a colon after an object name")
			}
			s.i++
		}
		var err error
		switch {
		case member != nil:
			err = member(name)
		case elem != nil:
			err = elem()
		default:
			err = s.Skip()
		}
		if err != nil {
			return err
		}
		switch s.Peek() {
		case ',':
			s.i++
		case end:
			s.i++
			s.depth--
			return nil
		default:
			return s.errorf("want a comma or the end of the %s", what)
		}
	}
}

// Names refuses a name seen twice in one object, among up to 64 names a
// caller reads: give each a bit.
type Names uint64

// Read reads the member with the name given bit, with read, the first
// time the name is seen, and refuses it the second time. Its errors name
// the member.
func (n *Names) Read(bit uint, name []byte, read func() error) error {
	if *n&(1<<bit) != 0 {
		return fmt.Errorf("%w: duplicate name %q", ErrSyntax, name)
	}
	*n |= 1 << bit
	if err := read(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// OptString reads a string, or null as "".
func (s *Scanner) OptString() (string, error) {
	if null, err := s.Null(); null || err != nil {
		return "", err
	}
	return s.String()
}

// OptObject reads an object as Object does, or null as nothing.
func (s *Scanner) OptObject(member func(name []byte) error) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.Object(member)
}
