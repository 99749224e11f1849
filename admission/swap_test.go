package admission_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"ward.dev/ward/admission"
	"ward.dev/ward/policies"
)

// TestHundredSwapsUnderLoad swaps the policy set 100 times while clients
// keep sending admission requests over HTTPS: every request gets a 200 with
// a decision made by one whole bundle, none is lost, none is a 5xx.
func TestHundredSwapsUnderLoad(t *testing.T) {
	f := newFixture(t)
	sets := make([]*policies.Set, 2)
	sets[0] = compile(t, staticPolicy("allow", "reg.example.com/**", "pass"))
	sets[1] = compile(t, staticPolicy("deny", "reg.example.com/**", "fail"))
	f.policies.Store(admission.NewState(sets[0], admission.Provenance{Version: 2}))
	body := review(t, "Pod", object("Pod", []string{"reg.example.com/app@sha256:" + strings.Repeat("a", 64)}, nil, nil, nil))

	const clients = 4
	var sent, ok, wrong, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := f.srv.Client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := client.Post(f.srv.URL+admission.PathValidate, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				var ar admissionv1.AdmissionReview
				err = json.NewDecoder(resp.Body).Decode(&ar)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || ar.Response == nil || (ar.Response.Result != nil && ar.Response.Result.Code >= 500) {
					failed.Add(1)
					continue
				}
				// Even versions allow, odd deny: the verdict must match the
				// bundle the response names.
				var v int
				fmt.Sscan(ar.Response.AuditAnnotations["bundle-version"], &v)
				if (v%2 == 0) != ar.Response.Allowed {
					wrong.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := range 100 {
		// Let some requests through between swaps.
		target := sent.Load() + 5
		for sent.Load() < target {
			runtime.Gosched()
		}
		f.policies.Store(admission.NewState(sets[(i+1)%2], admission.Provenance{Version: int64(i + 3)}))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 100 swaps: %d answered by one whole bundle, %d wrong, %d failed", sent.Load(), ok.Load(), wrong.Load(), failed.Load())
	if failed.Load() != 0 || wrong.Load() != 0 || ok.Load() != sent.Load() {
		t.Fatalf("%d failed, %d wrong of %d", failed.Load(), wrong.Load(), sent.Load())
	}
}
