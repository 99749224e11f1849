package policies

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"ward.dev/ward/bundle"
)

func TestSplitYAML(t *testing.T) {
	type doc struct {
		raw  string
		line int
	}
	for _, tc := range []struct {
		name, in string
		want     []doc
		wantErr  string
	}{
		{"one", "a: 1\nb: 2\n", []doc{{"a: 1\nb: 2\n", 1}}, ""},
		{"leading separator", "---\na: 1\n", []doc{{"a: 1\n", 2}}, ""},
		{"three, comments after separators", "a: 1\n--- # two\n\nb: 2\n---\t\nc: 3", []doc{{"a: 1\n", 1}, {"\nb: 2\n", 3}, {"c: 3", 6}}, ""},
		{"empty between", "a: 1\n---\n---\nb: 2\n", []doc{{"a: 1\n", 1}, {"b: 2\n", 4}}, ""},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []doc{{"a: 1\r\n", 1}, {"b: 2\r\n", 3}}, ""},
		{"indented dashes are content", "a: |\n  ---\n", []doc{{"a: |\n  ---\n", 1}}, ""},
		{"bad separator", "a: 1\n---b\nc: 2\n", nil, "invalid YAML document separator: b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []doc
			err := splitYAML([]byte(tc.in), func(raw []byte, line int) { got = append(got, doc{string(raw), line}) })
			if (err == nil) != (tc.wantErr == "") || err != nil && err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("docs %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("doc %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// FuzzSplitYAML checks splitYAML against the YAMLReader of
// k8s.io/apimachinery it replaces: the same documents with content, the
// same errors.
func FuzzSplitYAML(f *testing.F) {
	for _, s := range []string{"a: 1\n---\nb: 2\n", "---\n---\na\n", "a\r\n--- #c\r\nb", "---x\n", "# c\n---\nkind: X\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if strings.ContainsRune(in, '\r') {
			return // YAMLReader drops the CR of CRLF; splitYAML keeps documents' bytes
		}
		var got []string
		err := splitYAML([]byte(in), func(raw []byte, _ int) {
			if !isBlank(raw) {
				got = append(got, strings.TrimSuffix(string(raw), "\n"))
			}
		})
		var want []string
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(in)))
		var wantErr error
		for {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				wantErr = err
				break
			}
			// YAMLReader keeps a separator that starts a document.
			for bytes.HasPrefix(raw, []byte("---")) {
				_, raw, _ = bytes.Cut(raw, []byte("\n"))
			}
			if !isBlank(raw) {
				want = append(want, strings.TrimSuffix(string(raw), "\n"))
			}
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("err = %v, YAMLReader: %v", err, wantErr)
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("docs %q, YAMLReader %q", got, want)
		}
	})
}

// The header found without parsing is only a guess at the type to decode
// into: every way of writing a document compiles the same, and errors are
// those of the parsed header.
func TestQuickHeaderIsOnlyAGuess(t *testing.T) {
	const spec = `spec: {images: [{glob: "reg.example.com/**"}], authorities: [{static: {action: pass}}]}`
	for _, tc := range []struct{ name, doc, wantErr string }{
		{"block", "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\n" + spec, ""},
		{"quoted, commented, CRLF", "apiVersion: \"policy.ward.dev/v1\" # v1\r\nkind: 'ImagePolicy'\r\nmetadata: {name: p}\r\n" + spec, ""},
		{"flow", `{apiVersion: policy.ward.dev/v1, kind: ImagePolicy, metadata: {name: p}, spec: {images: [{glob: "reg.example.com/**"}], authorities: [{static: {action: pass}}]}}`, ""},
		{"kind twice", "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nkind: Settings\nmetadata: {name: p}\n" + spec, "already set"},
		{"anchored kind", "apiVersion: policy.ward.dev/v1\nkind: &k ImagePolicy\nmetadata: {name: p}\n" + spec, ""},
		{"kind a Settings field", "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: p}\n" + spec, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Compile([]bundle.Document{{Path: "p.yaml", Data: []byte(tc.doc)}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := set.MatchImage(Image{Repository: "reg.example.com/a", Name: "reg.example.com/a:v1"}, Subject{}); len(got) != 1 || got[0].Name != "p" {
				t.Fatalf("matched %v, want policy p", got)
			}
		})
	}
}

// A file that stops being YAML is reported in its place: after the errors
// of the documents before it, before those of the next file.
func TestNotYAMLReportedInOrder(t *testing.T) {
	_, err := Compile([]bundle.Document{
		{Path: "a.yaml", Data: []byte("apiVersion: policy.ward.dev/v1\nkind: Nope\nmetadata: {name: a}\n---\nfoo: 1\n---x\n")},
		{Path: "b.yaml", Data: []byte("apiVersion: policy.ward.dev/v1\nkind: Nope\nmetadata: {name: b}\n")},
	})
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Errs) != 3 {
		t.Fatalf("err = %v, want three errors", err)
	}
	for i, want := range []string{"is \"Nope\"", "not YAML: invalid YAML document separator: x", "is \"Nope\""} {
		if got := ce.Errs[i]; !strings.Contains(got.Error(), want) {
			t.Errorf("error %d = %q, want %q", i, got, want)
		}
	}
	if ce.Errs[0].File != "a.yaml" || ce.Errs[1].File != "a.yaml" || ce.Errs[2].File != "b.yaml" {
		t.Errorf("files %s, %s, %s", ce.Errs[0].File, ce.Errs[1].File, ce.Errs[2].File)
	}
}

// A compile with a ParseCache decodes only the documents it has not seen:
// the others are the very documents the last compile decoded, and the
// compiled set is the same as without the cache.
func TestParseCacheReusesUnchangedDocuments(t *testing.T) {
	policy := func(name, glob string) string {
		return "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: " + name + "}\nspec: {images: [{glob: \"" + glob + "\"}], authorities: [{static: {action: pass}}]}\n"
	}
	bundleOf := func(docs ...string) []bundle.Document {
		return []bundle.Document{{Path: "p.yaml", Data: []byte(strings.Join(docs, "---\n"))}}
	}
	var cache ParseCache
	if _, err := Compile(bundleOf(policy("a", "a.example.com/**"), policy("b", "b.example.com/**")), WithParseCache(&cache)); err != nil {
		t.Fatal(err)
	}
	first := cache.docs
	if len(first) != 2 {
		t.Fatalf("cache holds %d documents, want 2", len(first))
	}
	// b changes, c is new, and d does not compile.
	set, err := Compile(bundleOf(policy("a", "a.example.com/**"), policy("b", "b2.example.com/**"), policy("c", "c.example.com/**"), "kind: Nope\n"), WithParseCache(&cache))
	if err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("err = %v, want the bad document reported", err)
	}
	if cache.docs[policy("a", "a.example.com/**")] != first[policy("a", "a.example.com/**")] {
		t.Error("a was decoded again")
	}
	if len(cache.docs) != 3 {
		t.Errorf("cache holds %d documents, want a, b and c", len(cache.docs))
	}
	set, err = Compile(bundleOf(policy("a", "a.example.com/**"), policy("b", "b2.example.com/**")), WithParseCache(&cache))
	if err != nil {
		t.Fatal(err)
	}
	for img, want := range map[string]string{"a.example.com/x": "a", "b2.example.com/x": "b", "b.example.com/x": ""} {
		got := set.MatchImage(Image{Repository: img, Name: img + ":v1"}, Subject{})
		if (want == "") != (len(got) == 0) || want != "" && got[0].Name != want {
			t.Errorf("%s matched %v, want %q", img, got, want)
		}
	}
}
