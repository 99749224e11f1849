package policies

import (
	"encoding"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMain makes every document the tests and fuzz targets of this
// package compile on the fast path (decodePlain) a check of it: the YAML
// parser must decode the same document to the same value, or the run
// stops there (a panic, which a fuzz worker reports with its input).
// Benchmarks run without the check, which would time the YAML parser too
// (and so do the tests of a run given -bench).
func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() != "" {
		os.Exit(m.Run())
	}
	var plain atomic.Int64
	checkPlain = func(raw []byte, got, want any, err error) {
		plain.Add(1)
		if err != nil || !reflect.DeepEqual(got, want) {
			panic(fmt.Sprintf("the fast path decoded %+v, the YAML parser %+v (%v), from:\n%s", got, want, err, raw))
		}
	}
	code := m.Run()
	if testing.Verbose() {
		fmt.Printf("%d documents decoded on the fast path, each as the YAML parser decodes it\n", plain.Load())
	}
	os.Exit(code)
}

// TestPlainYAMLFallsBack: documents the fast path declines, or whose JSON
// the decoder refuses, are decoded by the YAML parser as before.
func TestPlainYAMLFallsBack(t *testing.T) {
	const head = "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: \"r.example/**\"}]\n"
	for name, doc := range map[string]string{
		"a number where a string belongs": head + "  authorities: [{name: 123, static: {action: pass}}]\n",
		"a folded scalar":                 head + "  authorities:\n  - name: >-\n      x\n    static: {action: pass}\n",
		"keys equal but for case":         head + "  authorities:\n  - name: k\n    static: {action: fail, Action: pass}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if decodePlain([]byte(doc), &ImagePolicyDoc{}) {
				t.Fatal("decoded on the fast path")
			}
			var got, want ImagePolicyDoc
			c := &compiler{}
			if !strict(at{c: c}, []byte(doc), &got) {
				t.Fatalf("refused: %v", c.errs)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || len(got.Spec.Authorities) != 1 || got.Spec.Authorities[0].Name == "" {
				t.Errorf("decoded %+v, the YAML parser %+v", got.Spec, want.Spec)
			}
		})
	}
}

// TestPlainDecodeTypes pins what makes the fast path decode policies as
// the YAML parser does: their types are plain. A type with its own
// unmarshaling, a field that keeps raw JSON (which would get the
// document's key order and escaping, not sigs.k8s.io/yaml's), an embedded
// field or a tag option beyond omitempty would each need a new look at
// decodePlain (go-json-experiment spells some of these differently).
func TestPlainDecodeTypes(t *testing.T) {
	jsonUnmarshaler := reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler := reflect.TypeFor[encoding.TextUnmarshaler]()
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if typ == reflect.TypeFor[json.RawMessage]() {
			t.Errorf("%s (%s) keeps raw JSON", path, typ)
			return
		}
		if typ.Implements(jsonUnmarshaler) || reflect.PointerTo(typ).Implements(jsonUnmarshaler) ||
			typ.Implements(textUnmarshaler) || reflect.PointerTo(typ).Implements(textUnmarshaler) {
			t.Errorf("%s (%s) unmarshals itself", path, typ)
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(path+"[]", typ.Elem())
		case reflect.Struct:
			for f := range typ.Fields() {
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				switch {
				case f.Anonymous:
					t.Errorf("%s.%s is embedded", path, f.Name)
				case !f.IsExported():
				case name == "" || name == "-":
					t.Errorf("%s.%s has no JSON name", path, f.Name)
				case opts != "" && opts != "omitempty":
					t.Errorf("%s.%s has the tag options %q", path, f.Name, opts)
				}
				walk(path+"."+name, f.Type)
			}
		}
	}
	for _, doc := range []any{ImagePolicyDoc{}, ClusterImagePolicyDoc{}, TrustRootDoc{}, ValidationPolicyDoc{}, SettingsDoc{}, header{}} {
		walk(reflect.TypeOf(doc).Name(), reflect.TypeOf(doc))
	}
	if len(seen) < 40 {
		t.Errorf("walked %d types; the walk missed the policy types", len(seen))
	}
}
