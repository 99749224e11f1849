package syncer_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/policies/sigstoretuf"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

func trustedRoot(t *testing.T, s *signtest.Sigstore) map[string]tuftest.SigstoreTarget {
	t.Helper()
	return map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: s.TrustedRootJSON(t)}}
}

// A remote TrustRoot (policy-controller's TUF mirror) in a bundle is read
// by the sync loop, never at admission time: a new trusted root published
// on the mirror is swapped in at the next refresh without a new bundle; a
// mirror that cannot be reached keeps the last verified copy, also across
// a restart, until the metadata that vouched for it expires.
func TestRemoteTrustRoot(t *testing.T) {
	const (
		issuer  = "https://token.actions.githubusercontent.com"
		subject = "https://github.com/example/app/.github/workflows/release.yaml@refs/heads/main"
	)
	first, second := signtest.NewSigstore(t), signtest.NewSigstore(t)
	mirror := tuftest.NewSigstoreMirror(t, t.TempDir(), trustedRoot(t, first), time.Now().Add(12*time.Hour))
	srv := httptest.NewServer(http.FileServer(http.Dir(mirror.Dir)))
	t.Cleanup(srv.Close)

	host := signtest.Registry(t, true)
	byFirst := signtest.PushImage(t, host+"/apps/first:v1")
	first.SignLegacy(t, byFirst, subject, issuer)
	bySecond := signtest.PushImage(t, host+"/apps/second:v1")
	second.SignLegacy(t, bySecond, subject, issuer)

	e := newEnv(t)
	e.repo.Publish(t, "prod", fmt.Sprintf(`apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata: {name: mirrored}
spec:
  remote:
    mirror: %s
    root: %s
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: keyless}
spec:
  images: [{glob: "**"}]
  authorities:
  - keyless:
      trustRootRef: mirrored
      insecureIgnoreSCT: true
      identities: [{issuer: %q, subject: %q}]
`, srv.URL, base64.StdEncoding.EncodeToString(mirror.Root), issuer, subject))
	e.clock.T = time.Now()
	s := e.syncer(t, syncer.OnExpiryKeep)
	decide := func(img string) bool {
		t.Helper()
		dec, err := admission.NewDecider(imageverify.New()).Decide(t.Context(), e.policies.Load(), admission.Request{Kind: "Pod", Namespace: "apps",
			Object: []byte(`{"spec":{"containers":[{"name":"c","image":"` + img + `"}]}}`)})
		if err != nil {
			t.Fatal(err)
		}
		return dec.Allowed
	}
	applied := func() *syncer.Applied {
		t.Helper()
		st, _ := s.Status("prod")
		if st.Applied == nil {
			t.Fatalf("nothing applied: %+v", st)
		}
		return st.Applied
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	v1 := applied()
	if v1.TrustRoots == "" || !decide(byFirst.String()) || decide(bySecond.String()) {
		t.Fatalf("first trusted root: trustRoots %q, first allowed %t, second allowed %t", v1.TrustRoots, decide(byFirst.String()), decide(bySecond.String()))
	}
	// The mirror publishes another trusted root; within the refresh
	// interval nothing changes, after it the new one is swapped in.
	mirror.Publish(t, trustedRoot(t, second))
	if err := s.Sync(t.Context(), "prod"); err != nil || applied().TrustRoots != v1.TrustRoots {
		t.Fatalf("within the refresh interval: %v, %q", err, applied().TrustRoots)
	}
	e.clock.T = e.clock.T.Add(sigstoretuf.DefaultRefresh + time.Minute)
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	v2 := applied()
	if v2.TrustRoots == v1.TrustRoots || v2.Version != v1.Version || !v2.AppliedAt.After(v1.AppliedAt) {
		t.Fatalf("after the refresh: %+v (was %+v)", v2, v1)
	}
	if decide(byFirst.String()) || !decide(bySecond.String()) {
		t.Fatal("the new trusted root is not enforced")
	}
	// The mirror goes away: the verified copy is kept, and a restart
	// serves it from the state folder.
	srv.Close()
	e.clock.T = e.clock.T.Add(sigstoretuf.DefaultRefresh + time.Minute)
	if err := s.Sync(t.Context(), "prod"); err != nil || applied().TrustRoots != v2.TrustRoots {
		t.Fatalf("mirror unreachable: %v", err)
	}
	e.policies.Store(nil)
	restarted := e.syncer(t, syncer.OnExpiryKeep)
	if err := restarted.Sync(t.Context(), "prod"); err != nil {
		t.Fatalf("restart without the mirror: %v", err)
	}
	if !decide(bySecond.String()) {
		t.Fatal("after the restart, the kept trusted root is not enforced")
	}
	// Past the mirror's metadata expiry the copy is no longer vouched for:
	// the sync fails, saying so, and the last verified policies stay.
	e.clock.T = time.Now().Add(13 * time.Hour)
	err := restarted.Sync(t.Context(), "prod")
	if err == nil || !strings.Contains(err.Error(), "the last verified copy expired at") {
		t.Fatalf("past the mirror's expiry: %v", err)
	}
	// And the policies compiled with it count as expired (onExpiry).
	restarted.ApplyExpiry()
	if st, _ := restarted.Status("prod"); st.State != syncer.StateExpired {
		t.Fatalf("past the mirror's expiry: state %q", st.State)
	}
}

// What a bundle's policies read from the cluster is in the source's
// status, beside the bundle it came with.
func TestClusterReferencesInStatus(t *testing.T) {
	e := newEnv(t)
	e.repo.Publish(t, "prod", `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: from-secret}
spec:
  images: [{glob: "**"}]
  authorities:
  - name: release
    key: {secretRef: {name: cosign-key}}
`)
	s := e.syncer(t, syncer.OnExpiryKeep)
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status("prod")
	if st.Applied == nil || len(st.Applied.ClusterReferences) != 1 || !strings.Contains(st.Applied.ClusterReferences[0], "key.secretRef reads Secret cosign-key") {
		t.Fatalf("status: %+v", st.Applied)
	}
}

// A spec whose credentials changed (a rotated Secret), with nothing else
// changed, syncs again at once with them.
func TestRotatedCredentialsSyncAtOnce(t *testing.T) {
	e := newEnv(t)
	sp := syncer.Spec{Name: "prod", Env: "prod", Root: e.root, Source: source.Dir{Path: e.repo.Dir}, Interval: time.Hour, Credentials: "token-1"}
	s, err := syncer.New([]syncer.Spec{sp}, e.stateDir, e.policies, syncer.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	syncs := func() int64 { st, _ := s.Status("prod"); return st.Syncs }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
		}
	}
	waitFor("the first sync", func() bool { return syncs() == 1 })
	if err := s.Upsert(sp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if syncs() != 1 {
		t.Fatalf("an unchanged spec synced again: %d syncs", syncs())
	}
	sp.Credentials = "token-2"
	if err := s.Upsert(sp); err != nil {
		t.Fatal(err)
	}
	waitFor("a sync with the new credentials", func() bool { return syncs() == 2 })
}
