package admission_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/policies"
)

// countingVerifier counts registry work; a unit-test stand-in for
// imageverify.Verifier.
type countingVerifier struct {
	verifies, resolves atomic.Int64
	err                error
	gate               chan struct{}
}

func (c *countingVerifier) Resolve(_ context.Context, ref name.Reference, _ authn.Keychain) (name.Digest, error) {
	c.resolves.Add(1)
	return ref.Context().Digest("sha256:" + strings.Repeat("d", 64)), nil
}

func (c *countingVerifier) Verify(ctx context.Context, _ name.Digest, _ *policies.CompiledAuthority, _ authn.Keychain) (*imageverify.Result, error) {
	c.verifies.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if c.err != nil {
		return nil, c.err
	}
	return &imageverify.Result{Signers: []imageverify.Signer{{Name: "key x"}}}, nil
}

func podRequest(image string) admission.Request {
	return admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(`{"spec":{"containers":[{"name":"c","image":"` + image + `"}]}}`)}
}

func TestCacheKeyedByDigestAndAuthority(t *testing.T) {
	key := strings.TrimSpace(testKey(t))
	v := &countingVerifier{}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	d := admission.NewDecider(v, admission.WithCache(admission.NewCache(admission.WithCacheClock(clock), admission.WithTTLs(time.Minute, 10*time.Second), admission.WithDigestTTL(30*time.Second))))
	st := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", key))}
	req := podRequest("reg.example.com/app:v1")
	for range 3 {
		if dec, err := d.Decide(t.Context(), st, req); err != nil || !dec.Allowed {
			t.Fatalf("decision: %+v, %v", dec, err)
		}
	}
	if v.verifies.Load() != 1 || v.resolves.Load() != 1 {
		t.Fatalf("verifies=%d resolves=%d, want 1 and 1", v.verifies.Load(), v.resolves.Load())
	}
	// A new bundle with the same authority (another policy name, another
	// glob) reuses the verification.
	st2 := &admission.State{Set: compile(t, keyPolicy("renamed", "reg.example.com/app", "enforce", key))}
	if dec, _ := d.Decide(t.Context(), st2, req); !dec.Allowed || v.verifies.Load() != 1 {
		t.Fatalf("after swap: allowed=%t verifies=%d, want cached", dec.Allowed, v.verifies.Load())
	}
	// Another key is another authority.
	st3 := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", testKey(t)))}
	d.Decide(t.Context(), st3, req)
	if v.verifies.Load() != 2 {
		t.Fatalf("verifies=%d after authority change, want 2", v.verifies.Load())
	}
	// The tag is resolved again after its TTL, the result after its TTL.
	now = now.Add(45 * time.Second)
	d.Decide(t.Context(), st, req)
	if v.resolves.Load() != 2 || v.verifies.Load() != 2 {
		t.Fatalf("resolves=%d verifies=%d after 45s, want 2 and 2", v.resolves.Load(), v.verifies.Load())
	}
	now = now.Add(time.Minute)
	d.Decide(t.Context(), st, req)
	if v.verifies.Load() != 3 {
		t.Fatalf("verifies=%d after the positive TTL, want 3", v.verifies.Load())
	}
}

func TestCacheNegativeAndUnavailable(t *testing.T) {
	key := testKey(t)
	st := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", key))}
	req := podRequest("reg.example.com/app@sha256:" + strings.Repeat("e", 64))
	for _, tc := range []struct {
		name  string
		err   error
		calls int64
	}{
		{"refusal is cached", imageverify.ErrNoMatch, 1},
		{"registry trouble is not", imageverify.ErrUnavailable, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &countingVerifier{err: tc.err}
			d := admission.NewDecider(v)
			for range 3 {
				dec, err := d.Decide(t.Context(), st, req)
				if err != nil || dec.Allowed {
					t.Fatalf("decision: %+v, %v", dec, err)
				}
			}
			if v.verifies.Load() != tc.calls {
				t.Fatalf("verifies = %d, want %d", v.verifies.Load(), tc.calls)
			}
		})
	}
}

func TestCacheDeduplicatesConcurrentLookups(t *testing.T) {
	v := &countingVerifier{gate: make(chan struct{})}
	d := admission.NewDecider(v)
	st := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", testKey(t)))}
	req := podRequest("reg.example.com/app@sha256:" + strings.Repeat("f", 64))
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if dec, err := d.Decide(t.Context(), st, req); err == nil && dec.Allowed {
				allowed.Add(1)
			}
		}()
	}
	// Wait until the single lookup is in flight, then release it.
	deadline := time.Now().Add(10 * time.Second)
	for v.verifies.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(v.gate)
	wg.Wait()
	if v.verifies.Load() != 1 || allowed.Load() != 20 {
		t.Fatalf("verifies = %d, allowed = %d; want 1 and 20", v.verifies.Load(), allowed.Load())
	}
}

func TestDecisionDeadline(t *testing.T) {
	v := &countingVerifier{gate: make(chan struct{})} // never released
	defer close(v.gate)
	d := admission.NewDecider(v)
	st := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", testKey(t)))}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	dec, err := d.Decide(ctx, st, podRequest("reg.example.com/app@sha256:"+strings.Repeat("a", 64)))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Allowed || !strings.Contains(dec.Message(), "deadline") {
		t.Fatalf("decision past the deadline: allowed=%t message=%q", dec.Allowed, dec.Message())
	}
}

// slowVerifier takes until its context ends to verify anything: a
// registry that never answers.
type slowVerifier struct{ countingVerifier }

func (s *slowVerifier) Verify(ctx context.Context, _ name.Digest, _ *policies.CompiledAuthority, _ authn.Keychain) (*imageverify.Result, error) {
	s.verifies.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// A workload with thousands of images against a registry that does not
// answer: the images are verified a bounded number at once, the decision
// comes back before the decision's deadline (its budget keeps time to
// answer), those never reached fail as not verified in time, and the deny
// message lists a few and counts the rest.
func TestManyImagesAnsweredWithinTheDeadline(t *testing.T) {
	v := &slowVerifier{}
	d := admission.NewDecider(v, admission.WithConcurrency(4))
	st := &admission.State{Set: compile(t, keyPolicy("a", "reg.example.com/**", "enforce", testKey(t)))}
	var containers []string
	for i := range 5000 {
		containers = append(containers, fmt.Sprintf(`{"name":"c%d","image":"reg.example.com/app%d@sha256:%s"}`, i, i, strings.Repeat("a", 64)))
	}
	req := admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(`{"spec":{"containers":[` + strings.Join(containers, ",") + `]}}`)}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	dec, err := d.Decide(ctx, st, req)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the decision came back after its deadline")
	}
	if n := v.verifies.Load(); n < 1 || n > 4 {
		t.Fatalf("%d verifications started, want at most the concurrency of 4", n)
	}
	msg := dec.Message()
	if dec.Allowed || len(dec.Images) != 5000 || len(msg) > admission.MaxMessageBytes ||
		!strings.Contains(msg, "and 4990 more failures") || !strings.Contains(msg, "ran out of time") {
		t.Fatalf("allowed=%t images=%d message (%d bytes) %q", dec.Allowed, len(dec.Images), len(msg), msg)
	}
}
