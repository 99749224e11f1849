package policies

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
)

// TestMain makes every document the tests and fuzz targets of this
// package compile on the fast path (decodePlain) a check of it: the YAML
// parser must decode the same document to the same value, or the run
// stops there (a panic, which a fuzz worker reports with its input).
// Benchmarks run without the check, which would time the YAML parser too.
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
	for name, doc := range map[string]string{
		"a number where a string belongs": "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: \"r.example/**\"}]\n  authorities: [{name: 123, static: {action: pass}}]\n",
		"a block scalar":                  "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: \"r.example/**\"}]\n  authorities:\n  - name: |-\n      x\n    static: {action: pass}\n",
	} {
		t.Run(name, func(t *testing.T) {
			var d ImagePolicyDoc
			c := &compiler{}
			if !strict(at{c: c}, []byte(doc), &d) {
				t.Fatalf("refused: %v", c.errs)
			}
			if len(d.Spec.Authorities) != 1 || d.Spec.Authorities[0].Name == "" {
				t.Errorf("decoded %+v", d.Spec)
			}
		})
	}
}
