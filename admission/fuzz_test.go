package admission_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/workload"
)

// FuzzValidate feeds arbitrary bodies to /validate. The policies need no
// registry (a static authority and a CEL rule), so every input is decided
// in-process. The handler must answer every input with an AdmissionReview,
// and never allow a Pod whose image no policy matches.
func FuzzValidate(f *testing.F) {
	set := compile(f, `apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: static}
spec:
  images: [{glob: "reg.example.com/**"}]
  authorities: [{static: {action: pass}}]
`, `apiVersion: policy.ward.dev/v1
kind: ValidationPolicy
metadata: {name: labels}
spec:
  validations: [{expression: "!has(object.metadata.labels) || size(object.metadata.labels) < 100"}]
`)
	p := &admission.Policies{}
	p.Store(&admission.State{Set: set})
	h := admission.NewWebhook(admission.NewDecider(&countingVerifier{}), p).Validator()
	for _, kind := range []string{"Pod", "Deployment", "CronJob"} {
		f.Add(review(f, kind, object(kind, []string{"reg.example.com/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"}, []string{"nginx"}, nil, nil)))
	}
	f.Add([]byte(`{"request":{"uid":"1","kind":{"kind":"Pod"},"object":{"spec":{"containers":null}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil || ar.Response == nil {
			t.Fatalf("no AdmissionReview for %q: %v (%q)", body, err, rec.Body.Bytes())
		}
		if !ar.Response.Allowed {
			return
		}
		// Allowed: every image of a Pod must be one the policy covers.
		var in admissionv1.AdmissionReview
		if json.Unmarshal(body, &in) != nil || in.Request == nil || in.Request.Kind.Kind != "Pod" || in.Request.Operation == admissionv1.Delete || in.Request.Operation == admissionv1.Connect {
			return
		}
		w, err := workload.Extract("Pod", in.Request.Object.Raw)
		if err != nil {
			return
		}
		for _, img := range w.Images() {
			if !strings.HasPrefix(img, "reg.example.com/") {
				t.Fatalf("allowed image %q that no policy matches", img)
			}
		}
	})
}
