package admission_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/policies"
)

// benchSet is n ImagePolicies over distinct team prefixes, all trusting
// key; the image under test matches one of them.
func benchSet(b *testing.B, host string, n int, key *signtest.Key) *policies.Set {
	return benchSetOf(b, host, n, key, false)
}

// benchSetOf is benchSet; with mixed, every other policy is a
// ClusterImagePolicy with policy-controller's glob for the same prefix.
func benchSetOf(b *testing.B, host string, n int, key *signtest.Key, mixed bool) *policies.Set {
	docs := make([]string, n)
	for i := range n {
		docs[i] = keyPolicy(fmt.Sprintf("team-%d", i), fmt.Sprintf("%s/team-%d/**", host, i), "enforce", key.PEM)
		if mixed && i%2 == 0 {
			docs[i] = cipKey("v1beta1", fmt.Sprintf("team-%d", i), fmt.Sprintf("%s/team-%d/**", host, i), key.PEM, "")
		}
	}
	return compile(b, docs...)
}

// BenchmarkDecide measures one admission decision for a Deployment with a
// signed image, among 10, 1,000 and 10,000 policies: cached (the
// verification result is in the cache: decode, match, lookup) and uncached
// (every decision fetches and verifies the signature from the in-process
// registry).
func BenchmarkDecide(b *testing.B) {
	host := signtest.Registry(b, true)
	key := signtest.NewKey(b)
	for _, n := range []int{10, 1000, 10000} {
		img := signtest.PushImage(b, fmt.Sprintf("%s/team-%d/app:v1", host, n/2))
		signtest.SignLegacy(b, img, key)
		sets := map[string]*admission.State{"imagepolicy": {Set: benchSet(b, host, n, key)}, "mixed": {Set: benchSetOf(b, host, n, key, true)}}
		req := admission.Request{Kind: "Deployment", Namespace: "apps", Object: []byte(fmt.Sprintf(
			`{"metadata":{"name":"web"},"spec":{"replicas":3,"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":%q,"ports":[{"containerPort":8080}]}]}}}}`, img.String()))}
		for _, mode := range []string{"cached", "uncached", "cached-mixed"} {
			var opts []admission.DeciderOption
			if mode == "uncached" {
				opts = append(opts, admission.WithCache(admission.NewCache(admission.WithTTLs(0, 0))))
			}
			st := sets["imagepolicy"]
			if mode == "cached-mixed" {
				// Half the policies ClusterImagePolicies with
				// policy-controller's globs, in the same index.
				st = sets["mixed"]
			}
			d := admission.NewDecider(imageverify.New(), opts...)
			b.Run(fmt.Sprintf("%s/policies=%d", mode, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						dec, err := d.Decide(b.Context(), st, req)
						if err != nil || !dec.Allowed {
							b.Fatalf("%v %v", err, dec.Message())
						}
					}
				})
			})
		}
	}
}

// BenchmarkWebhook measures the cached /validate handler end to end
// in-process: AdmissionReview JSON in, decision, AdmissionReview out.
func BenchmarkWebhook(b *testing.B) {
	benchWebhook(b, false)
}

// BenchmarkWebhookDuringSwaps is BenchmarkWebhook while another goroutine
// swaps the policy set (1,000 policies) every millisecond: the latency a
// request sees during hot swaps.
func BenchmarkWebhookDuringSwaps(b *testing.B) {
	benchWebhook(b, true)
}

func benchWebhook(b *testing.B, swaps bool) {
	host := signtest.Registry(b, true)
	key := signtest.NewKey(b)
	img := signtest.PushImage(b, host+"/team-5/app:v1")
	signtest.SignLegacy(b, img, key)
	set := benchSet(b, host, 1000, key)
	p := &admission.Policies{}
	p.Store(admission.NewState(set, admission.Provenance{Version: 1}))
	h := admission.NewWebhook(admission.NewDecider(imageverify.New()), p).Validator()
	body := review(b, "Deployment", object("Deployment", []string{img.String()}, nil, nil, nil))
	if swaps {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for v := int64(2); ; v++ {
				select {
				case <-stop:
					return
				case <-t.C:
					p.Store(admission.NewState(set, admission.Provenance{Version: v}))
				}
			}
		}()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			postAllowed(b, h, body)
		}
	})
}

// BenchmarkDecideManyImages decides a Pod of 5,000 containers, each a
// distinct image pinned by digest, against 10,000 static-pass policies:
// extraction, 5,000 matches and verdicts, and the decision's bookkeeping,
// with no registry in the way.
func BenchmarkDecideManyImages(b *testing.B) {
	const images, n = 5000, 10000
	docs := make([]string, n)
	for i := range n {
		docs[i] = staticPolicy(fmt.Sprintf("team-%d", i), fmt.Sprintf("registry.example.com/team-%d/**", i), "pass")
	}
	st := &admission.State{Set: compile(b, docs...)}
	var containers strings.Builder
	for i := range images {
		if i > 0 {
			containers.WriteByte(',')
		}
		fmt.Fprintf(&containers, `{"name":"c%d","image":"registry.example.com/team-%d/app@sha256:%064x"}`, i, i%n, i)
	}
	req := admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(`{"metadata":{"name":"big"},"spec":{"containers":[` + containers.String() + `]}}`)}
	d := admission.NewDecider(imageverify.New())
	b.ReportAllocs()
	for b.Loop() {
		dec, err := d.Decide(b.Context(), st, req)
		if err != nil || !dec.Allowed || len(dec.Images) != images {
			b.Fatalf("%v %d images", err, len(dec.Images))
		}
	}
}

// BenchmarkWebhookReview measures /validate in-process, one request after
// another, on the load tool's 8.5 KB AdmissionReview (a Pod with three
// pinned images, probes, env, volumes, managedFields) among 10,000
// static-pass policies: the server's share of a review without TLS and
// the network, the figure bench-load's "server CPU per review" builds on.
func BenchmarkWebhookReview(b *testing.B) {
	const n = 10000
	docs := make([]string, 0, n+3)
	for i := range n {
		docs = append(docs, staticPolicy(fmt.Sprintf("team-%d", i), fmt.Sprintf("registry.example.com/team-%d/**", i), "pass"))
	}
	for i, glob := range []string{"registry.example.com/team/**", "registry.example.com/platform/**", "ghcr.io/example-org/**"} {
		docs = append(docs, staticPolicy(fmt.Sprintf("fixture-%d", i), glob, "pass"))
	}
	p := &admission.Policies{}
	p.Store(admission.NewState(compile(b, docs...), admission.Provenance{Version: 1}))
	h := admission.NewWebhook(admission.NewDecider(imageverify.New()), p).Validator()
	body, err := os.ReadFile("testdata/admissionreview-pod.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		postAllowed(b, h, body)
	}
}

// postAllowed posts an AdmissionReview to h in-process and fails unless
// it is allowed.
func postAllowed(b *testing.B, h http.Handler, body []byte) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"allowed":true`) {
		b.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}
