package jsonscan_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"ward.dev/ward/internal/jsonscan"
)

func skip(b []byte) error {
	s := jsonscan.New(b)
	if err := s.Skip(); err != nil {
		return err
	}
	return s.End()
}

func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		in    string
		valid bool
	}{
		{`{}`, true}, {` [ ] `, true}, {`{"a":[1,-2.5e+3,0,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"],"b":{}}`, true},
		{`"é"`, true}, {`-0`, true}, {`0.0e0`, true}, {`1E-7`, true},
		{``, false}, {` `, false}, {`{`, false}, {`{"a"}`, false}, {`{"a":}`, false}, {`{"a":1,}`, false}, {`[1,]`, false},
		{`{a:1}`, false}, {`{'a':1}`, false}, {`[01]`, false}, {`[1.]`, false}, {`[.5]`, false}, {`[1e]`, false}, {`[+1]`, false},
		{`[-]`, false}, {`tru`, false}, {`nul`, false}, {`[true false]`, false}, {`{"a":1 "b":2}`, false},
		{`"\x"`, false}, {`"\u12"`, false}, {`"\u12g4"`, false}, {"\"a\tb\"", false}, {"\"\xff\"", false}, {"\"\xc3\"", false},
		{`{} {}`, false}, {`[1]]`, false}, {`"a`, false}, {`NaN`, false},
		{strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth), true},
		{strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1), false},
	} {
		err := skip([]byte(tc.in))
		if (err == nil) != tc.valid {
			t.Errorf("Skip(%q) = %v, want valid %v", tc.in, err, tc.valid)
		}
		if err != nil && !errors.Is(err, jsonscan.ErrSyntax) {
			t.Errorf("Skip(%q) = %v, not an ErrSyntax", tc.in, err)
		}
	}
}

func TestDuplicateNamesRefused(t *testing.T) {
	for _, in := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`} {
		s := jsonscan.New([]byte(in))
		var seen jsonscan.Names
		err := s.Object(func(name []byte) error {
			if string(name) == "a" {
				return seen.Read(0, name, s.Skip)
			}
			return s.Skip()
		})
		if err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("%s: %v, want the duplicate refused", in, err)
		}
	}
}

func TestStrings(t *testing.T) {
	s := jsonscan.New([]byte(`{"n\u0061me":"caf\u00e9 \ud83d\ude00","b":true,"z":null}`))
	got := map[string]any{}
	err := s.Object(func(name []byte) error {
		k := string(name)
		switch k {
		case "name":
			v, err := s.String()
			got[k] = v
			return err
		case "b":
			v, err := s.Bool()
			got[k] = v
			return err
		}
		v, err := s.OptString()
		got[k] = v
		return err
	})
	if err != nil || got["name"] != "café 😀" || got["b"] != true || got["z"] != "" {
		t.Fatalf("%v %v", got, err)
	}
}

// FuzzSkip checks the scanner against go-json-experiment's jsontext,
// which follows RFC 8259 strictly: the same texts are valid.
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e+3,true,null,"x\u00e9"]}`, `[]`, `"\ud800"`, `{"a":1,"a":2}`, "\"\xed\xa0\x80\"", `1e400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := skip(b)
		want := jsontext.Value(b).IsValid(jsontext.AllowDuplicateNames(true))
		if (err == nil) != want {
			t.Fatalf("Skip(%q) = %v; jsontext says valid %v", b, err, want)
		}
	})
}
