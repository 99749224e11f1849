package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/policies"
)

// fixture is a registry with signed and unsigned images, a policy set and a
// webhook served over HTTPS.
type fixture struct {
	host         string
	signedTag    string // signed in the legacy format, by tag
	signedRef    string // the same image by digest
	bundleSigned string // signed in the bundle format, by digest
	unsigned     string
	warnImage    string
	auditImage   string
	signedDigest string
	srv          *httptest.Server
	policies     *admission.Policies
	decider      *admission.Decider
}

func indentPEM(pem string) string {
	return "        " + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n        ")
}

func compile(t testing.TB, docs ...string) *policies.Set {
	t.Helper()
	var in []bundle.Document
	for i, d := range docs {
		in = append(in, bundle.Document{Path: fmt.Sprintf("policies/%d.yaml", i), Data: []byte(d)})
	}
	set, err := policies.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func keyPolicy(name, glob, mode, pem string) string {
	return fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: %s}
spec:
  mode: %s
  images: [{glob: %q}]
  authorities:
  - name: ci-key
    key:
      data: |
%s
`, name, mode, glob, indentPEM(pem))
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{host: signtest.Registry(t, true)}
	key := signtest.NewKey(t)
	d := signtest.PushImage(t, f.host+"/team/app:v1")
	signtest.SignLegacy(t, d, key)
	f.signedTag, f.signedDigest, f.signedRef = f.host+"/team/app:v1", d.DigestStr(), d.String()
	b := signtest.PushImage(t, f.host+"/team/tool:v1")
	signtest.SignBundle(t, b, key)
	f.bundleSigned = b.String()
	f.unsigned = signtest.PushImage(t, f.host+"/team/unsigned:v1").String()
	f.warnImage = signtest.PushImage(t, f.host+"/warn/app:v1").String()
	f.auditImage = signtest.PushImage(t, f.host+"/audit/app:v1").String()
	set := compile(t,
		keyPolicy("team-signed", f.host+"/team/**", "enforce", key.PEM),
		keyPolicy("warn-signed", f.host+"/warn/**", "warn", key.PEM),
		keyPolicy("audit-signed", f.host+"/audit/**", "audit", key.PEM),
		`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: library-static}
spec:
  images: [{glob: nginx}]
  authorities: [{static: {action: pass}}]
`,
		`apiVersion: policy.ward.dev/v1
kind: ValidationPolicy
metadata: {name: run-as-non-root}
spec:
  mode: enforce
  match: {kinds: [Deployment]}
  validations:
  - expression: "!has(object.spec.template.spec.hostNetwork) || !object.spec.template.spec.hostNetwork"
    message: Deployments may not use the host network
`)
	f.policies = &admission.Policies{}
	f.policies.Store(admission.NewState(set, admission.Provenance{Env: "prod", Version: 7, Digest: "sha256:" + strings.Repeat("b", 64), Commit: strings.Repeat("c", 40)}))
	f.decider = admission.NewDecider(imageverify.New())
	mux := http.NewServeMux()
	admission.NewWebhook(f.decider, f.policies).Register(mux)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// object builds a workload of the given kind with the images in the given
// container fields.
func object(kind string, containers, initContainers, ephemeral []string, extra map[string]any) map[string]any {
	list := func(images []string) []any {
		var out []any
		for i, img := range images {
			out = append(out, map[string]any{"name": fmt.Sprintf("c%d", i), "image": img})
		}
		return out
	}
	spec := map[string]any{"containers": list(containers)}
	if len(initContainers) > 0 {
		spec["initContainers"] = list(initContainers)
	}
	if len(ephemeral) > 0 {
		spec["ephemeralContainers"] = list(ephemeral)
	}
	for k, v := range extra {
		spec[k] = v
	}
	template := map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "x"}}, "spec": spec}
	var top map[string]any
	switch kind {
	case "Pod":
		top = map[string]any{"spec": spec}
	case "CronJob":
		top = map[string]any{"spec": map[string]any{"schedule": "* * * * *", "jobTemplate": map[string]any{"spec": map[string]any{"template": template}}}}
	default:
		top = map[string]any{"spec": map[string]any{"template": template}}
	}
	top["apiVersion"], top["kind"] = apiVersion(kind), kind
	top["metadata"] = map[string]any{"name": "w", "namespace": "apps"}
	return top
}

func apiVersion(kind string) string {
	switch kind {
	case "Pod", "ReplicationController":
		return "v1"
	case "Job", "CronJob":
		return "batch/v1"
	}
	return "apps/v1"
}

func review(t testing.TB, kind string, obj map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	group, version, _ := strings.Cut(apiVersion(kind), "/")
	if version == "" {
		group, version = "", group
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + kind),
			Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
			Resource:  metav1.GroupVersionResource{Group: group, Version: version, Resource: strings.ToLower(kind) + "s"},
			Namespace: "apps", Name: "w", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) post(t testing.TB, path string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := f.srv.Client().Post(f.srv.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &ar); err != nil || ar.Response == nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, b, err)
	}
	return ar.Response
}

func TestWebhookEveryWorkloadKind(t *testing.T) {
	f := newFixture(t)
	for _, kind := range policies.WorkloadKinds {
		t.Run(kind, func(t *testing.T) {
			allowed := f.post(t, admission.PathValidate, review(t, kind, object(kind, []string{f.signedRef}, []string{f.bundleSigned}, nil, nil)))
			if !allowed.Allowed {
				t.Fatalf("signed images denied: %v", allowed.Result)
			}
			want := map[string]string{"bundle-version": "7", "bundle-digest": "sha256:" + strings.Repeat("b", 64), "bundle-commit": strings.Repeat("c", 40), "policy": "team-signed"}
			if kind == "Deployment" {
				want["policy"] = "team-signed,run-as-non-root"
			}
			for k, v := range want {
				if allowed.AuditAnnotations[k] != v {
					t.Errorf("audit annotation %s = %q, want %q", k, allowed.AuditAnnotations[k], v)
				}
			}
			denied := f.post(t, admission.PathValidate, review(t, kind, object(kind, []string{f.signedTag}, []string{f.unsigned}, nil, nil)))
			if denied.Allowed {
				t.Fatal("unsigned init container image allowed")
			}
			msg := denied.Result.Message
			for _, part := range []string{f.unsigned, "policy team-signed", "authority ci-key", "no signatures found", "bundle prod v7"} {
				if !strings.Contains(msg, part) {
					t.Errorf("deny message %q lacks %q", msg, part)
				}
			}
			if denied.AuditAnnotations["bundle-version"] != "7" {
				t.Errorf("deny lacks provenance: %v", denied.AuditAnnotations)
			}
			// By tag, /validate wants the digest the mutating webhook pins.
			tagged := f.post(t, admission.PathValidate, review(t, kind, object(kind, []string{f.signedTag}, nil, nil, nil)))
			if tagged.Allowed || !strings.Contains(tagged.Result.Message, "image "+f.signedTag+" is verified but not pinned to a digest") {
				t.Errorf("tag reached /validate unpinned: allowed=%t %v", tagged.Allowed, tagged.Result)
			}
			mutated := f.post(t, admission.PathMutate, review(t, kind, object(kind, []string{f.signedTag}, nil, nil, nil)))
			var patch []map[string]any
			if err := json.Unmarshal(mutated.Patch, &patch); err != nil || len(patch) != 1 {
				t.Fatalf("patch = %s (%v)", mutated.Patch, err)
			}
			wantPath := map[string]string{"Pod": "/spec/containers/0/image", "CronJob": "/spec/jobTemplate/spec/template/spec/containers/0/image"}[kind]
			if wantPath == "" {
				wantPath = "/spec/template/spec/containers/0/image"
			}
			if patch[0]["path"] != wantPath || patch[0]["value"] != f.host+"/team/app@"+f.signedDigest {
				t.Errorf("patch = %v, want %s → %s@%s", patch[0], wantPath, f.host+"/team/app", f.signedDigest)
			}
		})
	}
}

func TestWebhookModesAndCases(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		kind    string
		obj     map[string]any
		allowed bool
		warning string
		message string
	}{
		{"ephemeral container unsigned", "Pod", object("Pod", []string{f.signedTag}, nil, []string{f.unsigned}, nil), false, "", "ephemeral"},
		{"warn mode admits with a warning", "Pod", object("Pod", []string{f.warnImage}, nil, nil, nil), true, "policy warn-signed", ""},
		{"audit mode admits silently", "Pod", object("Pod", []string{f.auditImage}, nil, nil, nil), true, "", ""},
		{"unmatched image denied by default", "Pod", object("Pod", []string{f.host + "/elsewhere/app@sha256:" + strings.Repeat("1", 64)}, nil, nil, nil), false, "", "no ImagePolicy matches"},
		{"image without registry host", "Pod", object("Pod", []string{"nginx@sha256:" + strings.Repeat("2", 64)}, nil, nil, nil), true, "", ""},
		{"invalid image reference", "Pod", object("Pod", []string{"UPPER/case:tag"}, nil, nil, nil), false, "", "invalid image reference"},
		{"validation policy", "Deployment", object("Deployment", []string{f.signedTag}, nil, nil, map[string]any{"hostNetwork": true}), false, "", "may not use the host network"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, admission.PathValidate, review(t, tc.kind, tc.obj))
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %t, want %t (%v)", r.Allowed, tc.allowed, r.Result)
			}
			if tc.message != "" && (r.Result == nil || !strings.Contains(r.Result.Message, tc.message)) {
				if tc.message != "ephemeral" || !strings.Contains(r.Result.Message, f.unsigned) {
					t.Errorf("message = %v, want it to contain %q", r.Result, tc.message)
				}
			}
			if got := strings.Join(r.Warnings, "\n"); (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings = %q, want %q", got, tc.warning)
			}
		})
	}
}

func TestWebhookBadRequests(t *testing.T) {
	f := newFixture(t)
	huge := review(t, "Pod", object("Pod", []string{strings.Repeat("a", 8<<20)}, nil, nil, nil))
	for _, tc := range []struct {
		name string
		body []byte
		code int32
	}{
		{"not JSON", []byte("{nope"), http.StatusBadRequest},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest},
		{"object not a pod", review(t, "Pod", notAPod()), http.StatusBadRequest},
		{"over the size limit", huge, http.StatusRequestEntityTooLarge},
		{"an image given twice", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"nginx","image":"evil.example.com/x"}]}}}}`), http.StatusBadRequest},
		{"invalid UTF-8 in an image", []byte("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"1\",\"kind\":{\"kind\":\"Pod\"},\"object\":{\"spec\":{\"containers\":[{\"image\":\"nginx\xff\"}]}}}}"), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.srv.Client().Post(f.srv.URL+admission.PathValidate, "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ar admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
				t.Fatalf("status %d: %v", resp.StatusCode, err)
			}
			if ar.Response == nil || ar.Response.Allowed || ar.Response.Result == nil || ar.Response.Result.Code != tc.code {
				t.Fatalf("response = %+v, want a %d error", ar.Response, tc.code)
			}
		})
	}
}

// A kind without Pods is admitted whatever its spec looks like: only
// workloads are read as workloads.
func TestWebhookOtherKindsNotReadAsWorkloads(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Widget"},"operation":"CREATE","object":{"spec":{"containers":"not a list","template":7}}}}`)
	if resp := f.post(t, admission.PathValidate, body); !resp.Allowed {
		t.Fatalf("response %+v, want allowed", resp.Result)
	}
}

// A swap of the policy set while requests are in flight never blocks them,
// and each request sees one whole set.
func TestWebhookSwapUnderLoad(t *testing.T) {
	f := newFixture(t)
	allowAll := compile(t, "apiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec: {unmatchedImages: allow}\n")
	denyAll := policies.Empty()
	body := review(t, "Pod", object("Pod", []string{f.host + "/other/app@sha256:" + strings.Repeat("3", 64)}, nil, nil, nil))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			set := denyAll
			if i%2 == 0 {
				set = allowAll
			}
			f.policies.Store(admission.NewState(set, admission.Provenance{Version: int64(i + 1)}))
		}
	}()
	for range 50 {
		r := f.post(t, admission.PathValidate, body)
		v := r.AuditAnnotations["bundle-version"]
		var n int
		fmt.Sscan(v, &n)
		// Odd versions deny, even allow: the verdict must match the version.
		if (n%2 == 1) != r.Allowed {
			t.Fatalf("bundle v%d: allowed = %t", n, r.Allowed)
		}
	}
	close(stop)
	wg.Wait()
}

// Bodies are pooled: concurrent reviews of different objects each get
// their own verdict, never another's (run with -race).
func TestWebhookPooledBodiesDoNotCrossTalk(t *testing.T) {
	f := newFixture(t)
	// The ValidationPolicy reads the object from the body after the
	// review was decoded: a body reused too early would change its
	// verdict.
	validation := "apiVersion: policy.ward.dev/v1\nkind: ValidationPolicy\nmetadata: {name: v}\nspec:\n  validations:\n  - expression: \"object.spec.containers[0].image.startsWith('reg.example.com/allowed/')\"\n"
	f.policies.Store(admission.NewState(compile(t, staticPolicy("allowed", "reg.example.com/**", "pass")+"---\n"+validation), admission.Provenance{Version: 1}))
	bodies := [2][]byte{
		review(t, "Pod", object("Pod", []string{"reg.example.com/allowed/app@sha256:" + strings.Repeat("1", 64)}, nil, nil, nil)),
		review(t, "Pod", object("Pod", []string{"reg.example.com/denied/app@sha256:" + strings.Repeat("2", 64)}, nil, nil, nil)),
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				which := (g + i) % 2
				r := f.post(t, admission.PathValidate, bodies[which])
				if r.Allowed != (which == 0) {
					t.Errorf("review of %s: allowed = %t: %v", []string{"allowed", "denied"}[which], r.Allowed, r.Result)
					return
				}
			}
		})
	}
	wg.Wait()
}

func testKey(t testing.TB) string { return signtest.NewKey(t).PEM }

// Outcomes are counted from the response sent: a tag refused for not being
// pinned is a deny, an object ward cannot decode an error.
func TestWebhookMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	m := admission.NewMetrics(reg)
	mux := http.NewServeMux()
	decider := admission.NewDecider(imageverify.New(), admission.WithDeciderMetrics(m))
	admission.NewWebhook(decider, f.policies, admission.WithMetrics(m)).Register(mux)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	f.srv = srv
	f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", []string{f.signedTag}, nil, nil, nil)))
	f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", []string{f.signedRef}, nil, nil, nil)))
	f.post(t, admission.PathValidate, review(t, "Pod", notAPod()))
	f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", []string{f.unsigned}, nil, nil, nil)))
	lines := metricLines(t, reg)
	registry := strings.Split(f.host, "/")[0]
	for _, want := range []string{
		`ward_policy_results_total{kind="Pod",mode="enforce",namespace="apps",policy="team-signed",result="pass"} 2`,
		`ward_policy_results_total{kind="Pod",mode="enforce",namespace="apps",policy="team-signed",result="fail"} 1`,
		`ward_signature_verification_seconds_count{registry="` + registry + `",result="verified"}`,
		`ward_signature_verification_seconds_count{registry="` + registry + `",result="refused"}`,
		`ward_verification_cache_lookups_total{result="hit"}`,
		`ward_verification_cache_lookups_total{result="miss"}`,
		`ward_verification_cache_entries `,
	} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("no metric %s in\n%s", want, strings.Join(lines, "\n"))
		}
	}
	// The deny and the allow above, the pinned-tag deny, the error.
	for outcome, want := range map[string]float64{"denied": 2, "allowed": 1, "errored": 1} {
		c, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := 0.0
		for _, mf := range c {
			if mf.GetName() != "ward_admission_decisions_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == outcome {
						got += m.GetCounter().GetValue()
					}
				}
			}
		}
		if got != want {
			t.Errorf("outcome %s counted %v times, want %v", outcome, got, want)
		}
	}
}

// metricLines renders reg's metrics as name{labels} value lines (counters,
// gauges, histogram counts).
func metricLines(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name, value := mf.GetName(), 0.0
			switch {
			case m.GetCounter() != nil:
				value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				value = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				name, value = name+"_count", float64(m.GetHistogram().GetSampleCount())
			}
			l := name
			if len(labels) > 0 {
				l += "{" + strings.Join(labels, ",") + "}"
			}
			out = append(out, fmt.Sprintf("%s %v", l, value))
		}
	}
	return out
}

// notAPod is well-formed JSON whose containers are not a list: ward's own
// decoding must refuse it (400), not the review's.
func notAPod() map[string]any {
	obj := object("Pod", []string{"reg.example.com/app:v1"}, nil, nil, nil)
	obj["spec"].(map[string]any)["containers"] = map[string]any{"x": 1}
	return obj
}

// One log line per decision, however many images fail: a denial names
// the count and lists the first failures; a plain admission is logged at
// debug level only.
func TestWebhookLogsOneLinePerDecision(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var lines []string
	log := funcr.NewJSON(func(obj string) { mu.Lock(); lines = append(lines, obj); mu.Unlock() }, funcr.Options{Verbosity: 0})
	mux := http.NewServeMux()
	admission.NewWebhook(f.decider, f.policies, admission.WithLogger(log)).Register(mux)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	f.srv = srv
	var images []string
	for i := range 3 {
		images = append(images, fmt.Sprintf("%s/elsewhere/app%d@sha256:%s", f.host, i, strings.Repeat("1", 64)))
	}
	if r := f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", images, nil, nil, nil))); r.Allowed {
		t.Fatal("unmatched images admitted")
	}
	f.post(t, admission.PathValidate, review(t, "Pod", object("Pod", []string{"nginx@sha256:" + strings.Repeat("2", 64)}, nil, nil, nil)))
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 1 || !strings.Contains(lines[0], `"msg":"denied"`) || !strings.Contains(lines[0], `"failures":3`) || !strings.Contains(lines[0], "app2") {
		t.Fatalf("log lines = %q", lines)
	}
}

func TestWebhookAnswersInTheReviewsVersion(t *testing.T) {
	f := newFixture(t)
	for _, version := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
		t.Run(version, func(t *testing.T) {
			body := review(t, "Pod", object("Pod", []string{f.signedRef}, nil, nil, nil))
			body = bytes.Replace(body, []byte(`"apiVersion":"admission.k8s.io/v1"`), []byte(`"apiVersion":"`+version+`"`), 1)
			resp, err := f.srv.Client().Post(f.srv.URL+admission.PathValidate, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ar admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
				t.Fatal(err)
			}
			if ar.APIVersion != version || ar.Kind != "AdmissionReview" || ar.Response == nil || ar.Response.UID != "uid-Pod" || !ar.Response.Allowed {
				t.Fatalf("answer %+v, want an allowed %s review for uid-Pod", ar, version)
			}
		})
	}
}

type panickingVerifier struct{ countingVerifier }

func (*panickingVerifier) Verify(context.Context, name.Digest, *policies.CompiledAuthority, authn.Keychain) (*imageverify.Result, error) {
	panic("a bug")
}

// A panic while deciding (a bug) denies the request: it neither ends the
// process, which would leave the API server to its failure policy, nor
// drops the connection.
func TestWebhookPanicDenies(t *testing.T) {
	p := &admission.Policies{}
	p.Store(&admission.State{Set: compile(t, keyPolicy("signed", "reg.example.com/**", "enforce", testKey(t)))})
	h := admission.NewWebhook(admission.NewDecider(&panickingVerifier{}), p).Validator()
	for _, images := range [][]string{{"reg.example.com/a:v1"}, {"reg.example.com/a:v1", "reg.example.com/b:v1"}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, admission.PathValidate, bytes.NewReader(review(t, "Pod", object("Pod", images, nil, nil, nil))))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil || ar.Response == nil {
			t.Fatalf("%d images: no review: %v %q", len(images), err, rec.Body.Bytes())
		}
		if ar.Response.Allowed || !strings.Contains(ar.Response.Result.Message, "internal error") {
			t.Fatalf("%d images: response %+v, want a denial naming an internal error", len(images), ar.Response.Result)
		}
	}
}
