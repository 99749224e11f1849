package plainyaml_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"ward.dev/ward/internal/plainyaml"
)

// same fails t unless ToJSON accepts doc with the meaning the full parser
// gives it; it says whether ToJSON accepted.
func same(t testing.TB, doc []byte) bool {
	t.Helper()
	got, ok := plainyaml.ToJSON(nil, doc)
	if !ok {
		return false
	}
	want, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("ToJSON accepted what the YAML parser refuses (%v):\n%s", err, doc)
	}
	if g, w := decode(t, got), decode(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("ToJSON gave %s, the YAML parser %s, for:\n%s", got, want, doc)
	}
	return true
}

func decode(t testing.TB, js []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, js)
	}
	return v
}

func TestToJSON(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"policy", `apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: allow-0}
spec:
  images:
  - glob: "registry.example.com/team/**"
  authorities:
  - static: {action: pass}
`, `{"apiVersion":"policy.ward.dev/v1","kind":"ImagePolicy","metadata":{"name":"allow-0"},"spec":{"images":[{"glob":"registry.example.com/team/**"}],"authorities":[{"static":{"action":"pass"}}]}}`},
		{"comments", "# head\na: b # tail\n  # indented\nc: # none\n", `{"a":"b","c":null}`},
		{"nested sequence under an item", "-\n  - a\n  - 'b''c'\n- [1, \"x\\\"y\", {k: v}]\n", `[["a","b'c"],[1,"x\"y",{"k":"v"}]]`},
		{"compact mapping", "- a: 1\n  b:\n  - true\n  c:\n    d: false\n- e: null\n", `[{"a":1,"b":[true],"c":{"d":false}},{"e":null}]`},
		{"plain scalars", "url: https://rekor.sigstore.dev\nexpr: has(object.spec) && x == 'y'\nhash: a#b\nempty: {}\nnone: []\n", `{"url":"https://rekor.sigstore.dev","expr":"has(object.spec) \u0026\u0026 x == 'y'","hash":"a#b","empty":{},"none":[]}`},
		{"literal block scalars", "key:\n  data: |\n    -----BEGIN PUBLIC KEY-----\n    MFkw\n\n      # indented\n    -----END PUBLIC KEY-----\n\n  # a comment\n  strip: |- # why\n    x\nseq:\n- |\n  y\n", `{"key":{"data":"-----BEGIN PUBLIC KEY-----\nMFkw\n\n  # indented\n-----END PUBLIC KEY-----\n","strip":"x"},"seq":["y\n"]}`},
		{"a literal block scalar on an item's line, after an indented comment", "   # injected\n- a: |\n    # real\n  b: |\n    x\n", `[{"a":"# real\n","b":"x\n"}]`},
		{"quoted keys", "\"a b\": 'c'\n'0': \"1\"\n", `{"a b":"c","0":"1"}`},
	}
	var many, want []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("k%d: %d\n", i, i))
		want = append(want, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	tests = append(tests, struct{ name, doc, want string }{"many keys", strings.Join(many, ""), "{" + strings.Join(want, ",") + "}"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := plainyaml.ToJSON(nil, []byte(tt.doc))
			if !ok {
				t.Fatalf("declined:\n%s", tt.doc)
			}
			if !reflect.DeepEqual(decode(t, got), decode(t, []byte(tt.want))) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			same(t, []byte(tt.doc))
		})
	}
}

// TestToJSONDeclines names what the subset leaves to the full parser:
// each of these would need YAML's rules beyond it.
func TestToJSONDeclines(t *testing.T) {
	for name, doc := range map[string]string{
		"yes is a bool in YAML 1.1":         "a: yes\n",
		"octal":                             "a: 0755\n",
		"float":                             "a: 1.5\n",
		"negative":                          "a: -1\n",
		"big integer":                       "a: 1234567890123456\n",
		"tilde null":                        "a: ~\n",
		"timestamp":                         "a: 2001-12-14\n",
		"anchor and alias":                  "a: &x b\nc: *x\n",
		"tag":                               "a: !!str 1\n",
		"block scalar, kept":                "a: |+\n  text\n\n",
		"block scalar, indented":            "a: |2\n   text\n",
		"block scalar, no break":            "a: |\n  text",
		"block scalar, empty":               "a: |\nb: c\n",
		"folded scalar":                     "a: >\n  text\n",
		"multi-line plain scalar":           "a: one\n  two\n",
		"multi-line quoted scalar":          "a: \"one\n  two\"\n",
		"multi-line flow":                   "a: {b: c,\n  d: e}\n",
		"duplicate key":                     "a: 1\na: 2\n",
		"duplicate flow key":                "a: {b: 1, b: 2}\n",
		"merge key":                         "<<: {a: b}\n",
		"complex key":                       "? a\n: b\n",
		"tab":                               "a:\tb\n",
		"carriage return":                   "a: b\r\n",
		"non-ASCII":                         "a: caf\xc3\xa9\n",
		"document marker":                   "---\na: b\n",
		"a scalar document":                 "just text\n",
		"a flow document":                   "{a: b}\n",
		"unknown escape":                    "a: \"\\x41\"\n",
		"trailing flow comma":               "a: [b, c,]\n",
		"colon in a plain scalar":           "a: b: c\n",
		"item where a key belongs":          "a: b\n- c\n",
		"nested sequence on a line":         "- - a\n",
		"key without a space":               "a:b: c\n",
		"bool key":                          "on: a\n",
		"comment without a space":           "a: \"b\"#c\n",
		"empty flow entry":                  "a: {b: , c: d}\n",
		"indented more than its key":        "a: b\n   c: d\n",
		"keys equal but for case":           "action: deny\nAction: pass\n",
		"flow keys equal but for case":      "a: {action: deny, ACTION: pass}\n",
		"many keys, two equal but for case": "k0: 0\nk1: 1\nk2: 2\nk3: 3\nk4: 4\nk5: 5\nk6: 6\nk7: 7\nk8: 8\nk9: 9\nk10: 10\nk11: 11\nk12: 12\nk13: 13\nk14: 14\nk15: 15\nk16: 16\nk17: 17\nK3: 3\n",
		"many keys, a duplicate":            "k0: 0\nk1: 1\nk2: 2\nk3: 3\nk4: 4\nk5: 5\nk6: 6\nk7: 7\nk8: 8\nk9: 9\nk10: 10\nk11: 11\nk12: 12\nk13: 13\nk14: 14\nk15: 15\nk16: 16\nk17: 17\nk17: 3\n",
		"slash escape":                      "a: \"x\\/y\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			if got, ok := plainyaml.ToJSON(nil, []byte(doc)); ok {
				t.Errorf("accepted as %s:\n%s", got, doc)
			}
		})
	}
}

// TestToJSONRepositoryYAML converts every YAML document in the repository
// both ways (files, and the yaml blocks of its Markdown: policies, examples,
// deploy manifests): ToJSON must agree with the full parser on each it
// accepts. (policies' tests check the same of every policy they compile.)
func TestToJSONRepositoryYAML(t *testing.T) {
	var docs, accepted int
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		yamlFile := strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
		if d.IsDir() || !(yamlFile || strings.HasSuffix(path, ".md")) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		texts := []string{string(data)}
		if !yamlFile {
			texts = yamlBlocks(string(data))
		}
		for _, text := range texts {
			for _, doc := range strings.Split(text, "\n---") {
				doc = strings.TrimPrefix(strings.TrimPrefix(doc, "---"), "\n")
				if _, err := yaml.YAMLToJSONStrict([]byte(doc)); err != nil || strings.TrimSpace(doc) == "" {
					continue // templates, fragments, and files that hold no document
				}
				docs++
				if same(t, []byte(doc)) {
					accepted++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ToJSON accepted %d of %d YAML documents in the repository, as the YAML parser reads them", accepted, docs)
	if accepted < 10 {
		t.Errorf("ToJSON accepted %d of %d YAML documents; the comparison compared nothing", accepted, docs)
	}
}

// yamlBlocks are the fenced yaml blocks of a Markdown text.
func yamlBlocks(md string) []string {
	var blocks []string
	for {
		i := strings.Index(md, "```yaml\n")
		if i < 0 {
			return blocks
		}
		md = md[i+len("```yaml\n"):]
		j := strings.Index(md, "```")
		if j < 0 {
			return blocks
		}
		blocks = append(blocks, md[:j])
		md = md[j:]
	}
}

// FuzzToJSON mutates documents byte by byte: each one ToJSON accepts must
// convert as sigs.k8s.io/yaml reads it.
func FuzzToJSON(f *testing.F) {
	for _, s := range []string{
		"apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  images:\n  - glob: \"r.example/**\"\n  authorities:\n  - static: {action: pass}\n",
		"- a: 1\n  b:\n  - true\n  c:\n    d: 'x''y'\n- [1, \"x\\\"y\", {k: v}]\n",
		"a: b # c\nd:\n  - e\n  -\n    f: g\n",
		"a: {b: [c, d], e: {}}\n",
		"k: has(x) && y\n",
		"   # x\n- a: |\n    # y\n  b: c\n",
		"a:\n  b: |\n    x\n\n     y\n  c: |-\n    z\n- |\n  w\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		same(t, doc)
	})
}

func BenchmarkToJSON(b *testing.B) {
	doc := []byte("apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: allow-0}\nspec:\n  images:\n  - glob: \"registry.example.com/team/**\"\n  authorities:\n  - static: {action: pass}\n")
	b.Run("plainyaml", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = plainyaml.ToJSON(buf[:0], doc)
		}
	})
	b.Run("sigs.k8s.io/yaml", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := yaml.YAMLToJSONStrict(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzToJSONShapes builds documents from YAML's shapes, the fuzzer's bytes
// choosing among them (nesting, indentation, scalars of every resolution,
// block scalars, comments), where mutating bytes rarely reaches: each must
// convert as sigs.k8s.io/yaml reads it, or be declined.
func FuzzToJSONShapes(f *testing.F) {
	for _, s := range []string{"", "\x00\x01\x02\x03", "\x05\x04\x03\x02\x01\x00\x07\x09\x0b", "\x01\x01\x01\x02\x02\x02\x03\x03\x03\x04\x04\x04"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, choices []byte) {
		g := &shapes{choices: choices}
		var b strings.Builder
		g.node(&b, 0, 0, true)
		same(t, []byte(b.String()))
	})
}

// shapes writes YAML, taking each choice from its bytes (zero when spent).
type shapes struct {
	choices []byte
	i       int
}

func (g *shapes) pick(n int) int {
	if g.i >= len(g.choices) {
		return 0
	}
	g.i++
	return int(g.choices[g.i-1]) % n
}

var (
	shapeKeys    = []string{"a", "b", "Action", "action", `"q k"`, "'s'", "data", "y", "on", "x.y/z", "_k", "k-1"}
	shapeScalars = []string{"v", "pass", "yes", "No", "null", "~", "true", "False", "0", "7", "0755", "1.5", "-1", "1e3", "12345678901234567",
		"2001-12-14", `"x"`, `"a\"b\\c"`, `"x\/y"`, `"\t"`, "'it''s'", "'#'", "https://r.example/p", "a#b", "a #c", "has(x) && y", "[]", "{}",
		"[a, 'b', 1]", "{k: v, n: 2}", "{k: v, K: w}", "[a,]", "*x", "&x v", "!!str 1", ">", "|", "|-", "|+", "a: b", "-", "- x", "? k"}
	shapeComments = []string{"", " # c", "#c"}
)

func (g *shapes) indent(b *strings.Builder, n int) { b.WriteString(strings.Repeat(" ", n)) }

// node writes a block node whose lines start at column col; first is
// whether the cursor is already on its first line.
func (g *shapes) node(b *strings.Builder, depth, col int, first bool) {
	if depth > 4 {
		b.WriteString(shapeScalars[g.pick(len(shapeScalars))] + "\n")
		return
	}
	switch g.pick(3) {
	case 0: // a mapping
		for k := range 1 + g.pick(3) {
			if k > 0 || !first {
				g.indent(b, col)
			}
			g.comment(b, col)
			b.WriteString(shapeKeys[g.pick(len(shapeKeys))] + ":")
			g.value(b, depth, col)
		}
	case 1: // a sequence
		for k := range 1 + g.pick(3) {
			if k > 0 || !first {
				g.indent(b, col)
			}
			b.WriteString("-")
			if g.pick(2) == 0 { // a mapping on the item's line
				b.WriteString(" ")
				g.node(b, depth+1, col+2, true)
				continue
			}
			g.value(b, depth, col)
		}
	default:
		b.WriteString(shapeScalars[g.pick(len(shapeScalars))] + shapeComments[g.pick(len(shapeComments))] + "\n")
	}
}

// comment perhaps writes a comment line at some indentation, then the
// indentation of col again.
func (g *shapes) comment(b *strings.Builder, col int) {
	if g.pick(4) == 0 {
		b.WriteString("#\n")
		g.indent(b, g.pick(8))
		b.WriteString("# note\n")
		g.indent(b, col)
	}
}

// value writes what follows a key's colon or an item's dash at col.
func (g *shapes) value(b *strings.Builder, depth, col int) {
	switch g.pick(4) {
	case 0: // nested, below
		b.WriteString(shapeComments[g.pick(2)] + "\n")
		g.node(b, depth+1, col+g.pick(4), false)
	case 1: // a literal block scalar
		b.WriteString(" |" + []string{"", "-", "+", "2"}[g.pick(4)] + shapeComments[g.pick(2)] + "\n")
		in := col + 1 + g.pick(3)
		for range 1 + g.pick(3) {
			switch g.pick(4) {
			case 0:
				b.WriteString("\n")
			case 1:
				g.indent(b, in+g.pick(3))
				b.WriteString("# not a comment\n")
			default:
				g.indent(b, in)
				b.WriteString("line " + shapeScalars[g.pick(len(shapeScalars))] + "\n")
			}
		}
	default:
		b.WriteString(" " + shapeScalars[g.pick(len(shapeScalars))] + shapeComments[g.pick(len(shapeComments))] + "\n")
	}
}
