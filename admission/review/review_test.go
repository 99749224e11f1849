package review_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	k8sjson "sigs.k8s.io/json"

	"ward.dev/ward/admission/review"
	"ward.dev/ward/admission/workload"
)

const pod = `{"metadata":{"name":"web","namespace":"apps","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"reg.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}}`

func body(apiVersion, request string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"AdmissionReview","request":` + request + `}`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		// want is the request's operation and the object's first image,
		// or wantErr a part of the error.
		wantVersion, wantImage, wantErr string
	}{
		{name: "v1", body: body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":`+pod+`}`), wantVersion: review.V1, wantImage: "reg.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		{name: "v1beta1", body: body(review.V1beta1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`}`), wantVersion: review.V1beta1, wantImage: "reg.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		{name: "spaces and escaped names", body: " {\n\"apiVersion\" : \"admission.k8s.io/v1\", \"kind\":\"AdmissionReview\",\"request\" :\t{\"uid\":\"1\",\"kind\":{\"kind\":\"Pod\"},\"\\u006fbject\" :\n " + pod + " } }\n", wantVersion: review.V1, wantImage: "reg.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		{name: "null object", body: body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"operation":"DELETE","object":null,"oldObject":`+pod+`}`), wantVersion: review.V1},
		{name: "unknown fields skipped", body: body(review.V1, `{"uid":"1","options":{"a":[1,2,{"b":null}]},"kind":{"kind":"Pod"},"object":`+pod+`,"extra":true}`), wantVersion: review.V1, wantImage: "reg.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"},
		{name: "not JSON", body: `{nope`, wantVersion: review.V1, wantErr: "invalid JSON: want an object name at offset 1"},
		{name: "not an object", body: `[]`, wantVersion: review.V1, wantErr: "want an object"},
		{name: "other apiVersion", body: body("admission.k8s.io/v2", `{"uid":"1"}`), wantVersion: review.V1, wantErr: "apiVersion is not"},
		{name: "other kind", body: `{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"1"}}`, wantVersion: review.V1, wantErr: `kind is "Pod"`},
		{name: "no request", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, wantVersion: review.V1, wantErr: "no request"},
		{name: "null request", body: body(review.V1, `null`), wantVersion: review.V1, wantErr: "no request"},
		{name: "no uid", body: body(review.V1, `{"kind":{"kind":"Pod"}}`), wantVersion: review.V1, wantErr: "no uid"},
		{name: "data after the review", body: body(review.V1, `{"uid":"1"}`) + ` {}`, wantVersion: review.V1, wantErr: "after"},
		{name: "truncated", body: body(review.V1, `{"uid":"1","object":`+pod[:40]), wantVersion: review.V1, wantErr: "end of input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, req, err := review.Decode([]byte(tc.body))
			if v != tc.wantVersion {
				t.Errorf("apiVersion = %q, want %q", v, tc.wantVersion)
			}
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, review.ErrBadRequest) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a bad request about %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantImage == "" {
				if req.Object != nil || req.Fields != nil {
					t.Fatalf("object = %q, fields = %v, want none", req.Object, req.Fields)
				}
				return
			}
			if string(req.Object) != pod {
				t.Errorf("Object = %q, want the object's bytes %q", req.Object, pod)
			}
			w, err := req.Fields.Workload("Pod")
			if err != nil || w.Containers[0].Image != tc.wantImage || w.Labels["app"] != "web" {
				t.Errorf("workload = %+v, %v", w, err)
			}
		})
	}
}

// One test per attack on the parser: input on which a lenient or
// case-insensitive reader would see a different request than the API
// server meant is refused, or read as the API server reads it. A name
// given twice in the review's own fields is refused; in the object, the
// object is not read as a workload (Fields nil), and reading it as one
// (what a decision does for a workload kind) refuses it.
func TestDecodeDuplicateNamesRefused(t *testing.T) {
	for _, tc := range []struct {
		body     string
		inObject bool
	}{
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`,"object":{"spec":{"containers":[{"image":"evil.example.com/x"}]}}}`), false},
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"kind":{"kind":"ConfigMap"},"object":`+pod+`}`), false},
		// A name escaped differently is the same name.
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`,"\u006fbject":{}}`), false},
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":{"spec":{"containers":[{"image":"a","image":"evil.example.com/x"}]}}}`), true},
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":{"spec":{"containers":[]},"spec":{"containers":[{"image":"evil.example.com/x"}]}}}`), true},
		{body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":{"metadata":{"labels":{"a":"1","\u0061":"2"}}}}`), true},
	} {
		_, req, err := review.Decode([]byte(tc.body))
		if !tc.inObject {
			if err == nil || !strings.Contains(err.Error(), "duplicate") {
				t.Errorf("Decode(%s) = %v, want a duplicate name refused", tc.body, err)
			}
			continue
		}
		if err != nil || req.Fields != nil {
			t.Errorf("Decode(%s) = %v, fields %v; want the review read and the object not read as a workload", tc.body, err, req.Fields)
			continue
		}
		if _, err := workload.Extract("Pod", req.Object); err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("Extract(%s) = %v, want a duplicate name refused", req.Object, err)
		}
	}
}

// An object that is not a workload as ward reads one is still a valid
// review: whether it matters depends on the kind (a ConfigMap's spec is
// its own business).
func TestDecodeObjectNotAWorkload(t *testing.T) {
	for _, obj := range []string{`"web"`, `{"spec":{"containers":{}}}`, `{"spec":{"template":"x"}}`, `[1,2]`} {
		_, req, err := review.Decode([]byte(body(review.V1, `{"uid":"1","kind":{"kind":"Widget"},"object":`+obj+`}`)))
		if err != nil || req.Fields != nil || string(req.Object) != obj {
			t.Errorf("object %s: err %v, fields %v, raw %q", obj, err, req.Fields, req.Object)
		}
	}
	if _, _, err := review.Decode([]byte(body(review.V1, `{"uid":"1","object":{"spec":{"containers":{]}}}`))); err == nil {
		t.Error("invalid JSON in the object accepted")
	}
}

func TestDecodeNamesAreCaseSensitive(t *testing.T) {
	// encoding/json would read "Image" as image, and "Containers" as
	// containers; the API server reads neither, and neither does ward.
	b := body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":{"spec":{"Containers":[{"image":"evil.example.com/x"}],"containers":[{"Image":"evil.example.com/y","image":"reg.example.com/app"}]}}}`)
	_, req, err := review.Decode([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	w, err := req.Fields.Workload("Pod")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Images(); !reflect.DeepEqual(got, []string{"reg.example.com/app"}) {
		t.Fatalf("images = %q, want only reg.example.com/app", got)
	}
}

func TestDecodeInvalidUTF8Refused(t *testing.T) {
	b := body(review.V1, "{\"uid\":\"1\",\"kind\":{\"kind\":\"Pod\"},\"object\":{\"spec\":{\"containers\":[{\"image\":\"reg.example.com/app\xff\"}]}}}")
	if _, _, err := review.Decode([]byte(b)); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v, want invalid UTF-8 refused", err)
	}
}

func TestRead(t *testing.T) {
	valid := body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`}`)
	for _, tc := range []struct {
		name        string
		body        io.Reader
		contentType string
		length      int64 // -1: chunked
		wantStatus  int
	}{
		{"valid", strings.NewReader(valid), "application/json", int64(len(valid)), http.StatusOK},
		{"valid, chunked", strings.NewReader(valid), "application/json", -1, http.StatusOK},
		{"no body", http.NoBody, "application/json", 0, http.StatusBadRequest},
		{"other content type", strings.NewReader(valid), "application/yaml", int64(len(valid)), http.StatusBadRequest},
		{"over the limit, said", strings.NewReader(valid), "application/json", review.MaxBody + 1, http.StatusRequestEntityTooLarge},
		{"over the limit, chunked", io.MultiReader(strings.NewReader(`{"a":"`), strings.NewReader(strings.Repeat("a", review.MaxBody))), "application/json", -1, http.StatusRequestEntityTooLarge},
		{"shorter than said", strings.NewReader(valid), "application/json", int64(len(valid)) + 10, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/validate", tc.body)
			r.ContentLength = tc.length
			r.Header.Set("Content-Type", tc.contentType)
			v, req, status, err := review.Read(r)
			if status != tc.wantStatus || (err == nil) != (tc.wantStatus == http.StatusOK) {
				t.Fatalf("status %d, %v; want %d", status, err, tc.wantStatus)
			}
			if err == nil && (v != review.V1 || req.UID != "1") {
				t.Fatalf("got %q %+v", v, req)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	resp := review.Denied("no")
	resp.UID, resp.Warnings, resp.AuditAnnotations = "1", []string{"w"}, map[string]string{"k": "v"}
	resp.Patch, resp.PatchType = []byte(`[{"op":"replace","path":"/a","value":"b"}]`), review.PatchTypeJSONPatch
	if err := review.Write(rec, review.V1beta1, resp); err != nil {
		t.Fatal(err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	// What the API server reads it with.
	var ar admissionv1.AdmissionReview
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(rec.Body.Bytes(), &ar); err != nil {
		t.Fatal(err)
	}
	r := ar.Response
	if ar.APIVersion != review.V1beta1 || ar.Kind != "AdmissionReview" || r.UID != "1" || r.Allowed || r.Result.Code != 403 || r.Result.Message != "no" ||
		string(r.Patch) != string(resp.Patch) || *r.PatchType != admissionv1.PatchTypeJSONPatch || r.Warnings[0] != "w" || r.AuditAnnotations["k"] != "v" {
		t.Fatalf("read back %s as %+v", rec.Body.Bytes(), ar)
	}
}

// A registry's error text may hold invalid UTF-8: the response is still
// a valid review, the bytes written as U+FFFD.
func TestWriteInvalidUTF8(t *testing.T) {
	rec := httptest.NewRecorder()
	resp := review.Denied("registry said: \xff\xfe")
	resp.UID, resp.Warnings = "1", []string{"w\xff"}
	if err := review.Write(rec, review.V1, resp); err != nil {
		t.Fatal(err)
	}
	var ar admissionv1.AdmissionReview
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(rec.Body.Bytes(), &ar); err != nil || ar.Response == nil {
		t.Fatalf("%q: %v", rec.Body.Bytes(), err)
	}
	if r := ar.Response; r.Allowed || r.UID != "1" || !strings.Contains(r.Result.Message, "\uFFFD") || r.Warnings[0] != "w\uFFFD" {
		t.Fatalf("read back %+v", r)
	}
}

// FuzzDecode checks Decode against the API machinery's own reading of
// an AdmissionReview: whatever Decode accepts, sigs.k8s.io/json (the
// API server's case-sensitive decoder) reads as the same request with
// the same images.
func FuzzDecode(f *testing.F) {
	fixture, err := os.ReadFile("../testdata/admissionreview-pod.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`}`)))
	f.Add([]byte(body(review.V1beta1, `{"uid":"1","kind":{"kind":"CronJob"},"object":{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"image":"a"}]}}}}}}}`)))
	f.Add([]byte(body(review.V1, `{"uid":"1","kind":{"kind":"Deployment"},"object":{"spec":{"template":{"spec":{"containers":[{"image":"a"}]}}}},"oldObject":null}`)))
	f.Add([]byte(body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":{"spec":{"containers":[{"image":"a","image":"b"}]}}}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, req, err := review.Decode(b)
		if err != nil {
			return
		}
		var ar admissionv1.AdmissionReview
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts(b, &ar); err != nil {
			t.Fatalf("Decode accepted what the API machinery refuses: %v", err)
		}
		in := ar.Request
		if in == nil || string(in.UID) != req.UID || in.Kind.Kind != req.Kind.Kind || in.Namespace != req.Namespace || string(in.Operation) != req.Operation {
			t.Fatalf("request %+v, API machinery read %+v", req, in)
		}
		if len(in.Object.Raw) == 0 || string(in.Object.Raw) == "null" {
			if req.Object != nil {
				t.Fatalf("object %q where the API machinery read none", req.Object)
			}
			return
		}
		if !bytes.Equal(compact(t, in.Object.Raw), compact(t, req.Object)) {
			t.Fatalf("object %q, API machinery read %q", req.Object, in.Object.Raw)
		}
		if !workload.Supported(req.Kind.Kind) {
			return
		}
		if req.Fields == nil { // not a workload as ward reads one: a decision refuses it
			if _, err := workload.Extract(req.Kind.Kind, req.Object); err == nil {
				t.Fatalf("object %q not read as a workload in the review, but read alone", req.Object)
			}
			return
		}
		got, err := req.Fields.Workload(req.Kind.Kind)
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Spec *struct {
				Containers []struct {
					Image string `json:"image"`
				} `json:"containers"`
				Template *struct {
					Spec *struct {
						Containers []struct {
							Image string `json:"image"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if k8sjson.UnmarshalCaseSensitivePreserveInts(in.Object.Raw, &want) != nil || want.Spec == nil {
			return
		}
		if req.Kind.Kind == "CronJob" {
			return // its Pod template is deeper than this decode reads
		}
		containers := want.Spec.Containers
		if req.Kind.Kind != "Pod" {
			containers = nil
			if want.Spec.Template != nil && want.Spec.Template.Spec != nil {
				containers = want.Spec.Template.Spec.Containers
			}
		}
		var gotImages []string
		for _, c := range got.Containers {
			if c.Field == "containers" {
				gotImages = append(gotImages, c.Image)
			}
		}
		if len(gotImages) != len(containers) {
			t.Fatalf("containers %q, API machinery read %+v", gotImages, containers)
		}
		for i, c := range containers {
			if gotImages[i] != c.Image {
				t.Fatalf("image %d = %q, API machinery read %q", i, gotImages[i], c.Image)
			}
		}
	})
}

func compact(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func BenchmarkDecode(b *testing.B) {
	fixture, err := os.ReadFile("../testdata/admissionreview-pod.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(fixture)))
	for b.Loop() {
		if _, _, err := review.Decode(fixture); err != nil {
			b.Fatal(err)
		}
	}
}

// Release gives the body back: the request no longer holds it, and the
// next request reads into a buffer that holds nothing of the last one.
func TestReleaseForgetsTheBody(t *testing.T) {
	read := func(b string) *review.Request {
		r := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		_, req, _, err := review.Read(r)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	first := read(body(review.V1, `{"uid":"1","kind":{"kind":"Pod"},"object":`+pod+`}`))
	obj := first.Object
	first.Release()
	if first.Object != nil || first.OldObject != nil {
		t.Fatal("the request still holds the body after Release")
	}
	if bytes.Contains(obj, []byte("reg.example.com")) {
		t.Fatal("the released body still holds the object")
	}
	first.Release() // twice: nothing
	var nilReq *review.Request
	nilReq.Release()
	second := read(body(review.V1, `{"uid":"2","kind":{"kind":"Pod"},"object":{"spec":{"containers":[{"name":"b","image":"b"}]}}}`))
	defer second.Release()
	// The second body is shorter than the first, in the same buffer: its
	// object is exactly its own bytes, nothing of the first after them.
	if second.UID != "2" || string(second.Object) != `{"spec":{"containers":[{"name":"b","image":"b"}]}}` {
		t.Fatalf("second request: %q", second.Object)
	}
	if first.UID != "1" || first.Kind.Kind != "Pod" {
		t.Fatalf("fields other than the object changed with the body: %+v", first)
	}
}
