package workload_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"ward.dev/ward/admission/workload"
	"ward.dev/ward/internal/jsonscan"
)

// Each kind's pod spec is found at its path, in one pass; a missing or
// null spec or template means no containers, not an error.
func TestExtract(t *testing.T) {
	pod := `{"containers":[{"name":"app","image":"reg.example.com/app:1"}],"initContainers":[{"name":"init","image":"reg.example.com/init:1"}],
		"imagePullSecrets":[{"name":"pull"}],"serviceAccountName":"builder"}`
	for _, tc := range []struct {
		kind, object, wantPath string
		images                 int
	}{
		{"Pod", `{"apiVersion":"v1","metadata":{"name":"p","labels":{"a":"b"}},"spec":` + pod + `}`, "/spec/containers/0/image", 2},
		{"Deployment", `{"apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"replicas":2,"template":{"metadata":{},"spec":` + pod + `}}}`, "/spec/template/spec/containers/0/image", 2},
		{"CronJob", `{"apiVersion":"batch/v1","metadata":{"generateName":"c-"},"spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":` + pod + `}}}}}`, "/spec/jobTemplate/spec/template/spec/containers/0/image", 2},
		{"Deployment", `{"metadata":{"name":"d"},"spec":{"template":null}}`, "", 0},
		{"CronJob", `{"metadata":{"name":"c"},"spec":{"jobTemplate":{}}}`, "", 0},
		{"Pod", `{"metadata":{"name":"p"},"spec":null}`, "", 0},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.kind, tc.object[:20]), func(t *testing.T) {
			w, err := workload.Extract(tc.kind, []byte(tc.object))
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Images()) != tc.images {
				t.Fatalf("images %v, want %d", w.Images(), tc.images)
			}
			if tc.images == 0 {
				if w.ServiceAccount != "default" {
					t.Errorf("service account %q, want default", w.ServiceAccount)
				}
				return
			}
			var path string
			for _, c := range w.Containers {
				if c.Field == "containers" {
					path = c.Path
				}
			}
			if path != tc.wantPath || w.ServiceAccount != "builder" || len(w.PullSecrets) != 1 || w.Name == "" {
				t.Fatalf("%+v", w)
			}
		})
	}
	if _, err := workload.Extract("Service", []byte(`{}`)); !errors.Is(err, workload.ErrUnsupportedKind) {
		t.Errorf("Service: %v", err)
	}
	if _, err := workload.Extract("Deployment", []byte(`{"spec":{"template":5}}`)); err == nil {
		t.Error("a template that is not an object was accepted")
	}
	// A bare null is no object: refused, not read as a Pod with no
	// containers (which every policy would admit).
	if _, err := workload.Extract("Pod", []byte(` null`)); err == nil {
		t.Error("a null object was read as a Pod")
	}
}

// BenchmarkExtract reads the Pod of an API server's AdmissionReview (3
// containers, probes, env, volumes, managedFields: testdata/pod.json, from
// ../shared/bench's fixture).
func BenchmarkExtract(b *testing.B) {
	raw, err := os.ReadFile("testdata/pod.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := workload.Extract("Pod", raw); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScan checks Scan against go-json-experiment/json reading the same
// fields by their json tags: whatever either accepts, both read the same
// fields. Scan is stricter in two ways: it refuses a name given twice
// among the fields it reads, and it wants an object where json reads a
// bare null as nothing to do (a null object is no workload; the
// AdmissionReview reader handles "object": null before calling Scan).
func FuzzScan(f *testing.F) {
	pod, err := os.ReadFile("testdata/pod.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pod)
	f.Add([]byte(`{"apiVersion":"batch/v1","metadata":{"name":"n","labels":{"a":"b","c":null}},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"a"},null]}}}}}}`))
	f.Add([]byte(`{"metadata":{"labels":{}},"spec":{"template":{"spec":{"initContainers":[],"imagePullSecrets":[{"name":"s"}],"serviceAccountName":"sa"}}}}`))
	f.Add([]byte(`{"spec":{"containers":[{"image":"a","image":"b"}]}}`))
	f.Add([]byte(` null `))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got workload.Fields
		s := jsonscan.New(b)
		err := got.Scan(s)
		if err == nil {
			err = s.End()
		}
		var want workload.Fields
		wantErr := json.Unmarshal(b, &want, jsontext.AllowDuplicateNames(true))
		switch {
		case err != nil && strings.Contains(err.Error(), "duplicate"):
			return
		case err != nil && wantErr == nil && string(bytes.TrimSpace(b)) == "null":
			return
		case (err == nil) != (wantErr == nil):
			t.Fatalf("Scan: %v; json: %v", err, wantErr)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("Scan read %+v; json read %+v", got, want)
		}
	})
}
