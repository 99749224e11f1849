package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// allowing is a bundle whose only policy admits images under glob.
func allowing(glob string) string {
	return fmt.Sprintf("apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: allow}\nspec:\n  images: [{glob: %q}]\n  authorities: [{static: {action: pass}}]\n", glob)
}

type env struct {
	repo     *tuftest.Repo
	root     []byte
	stateDir string
	policies *admission.Policies
	clock    *tuftest.Clock
}

func newEnv(t *testing.T) *env { return newEnvWith(t, tuftest.Options{}) }

func newEnvWith(t *testing.T, o tuftest.Options) *env {
	if len(o.Envs) == 0 {
		o.Envs = []string{"prod"}
	}
	repo := tuftest.NewRepo(t, o)
	repo.Publish(t, "prod", allowing("reg.example.com/v1/**"))
	return &env{repo: repo, root: repo.Root(t), stateDir: t.TempDir(), policies: &admission.Policies{}, clock: &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}}
}

func (e *env) syncer(t *testing.T, onExpiry string) *syncer.Syncer {
	t.Helper()
	return e.newSyncer(t, e.stateDir, syncer.Spec{Source: source.Dir{Path: e.repo.Dir}, OnExpiry: onExpiry})
}

// newSyncer makes a syncer of one source, named and set to prod and the
// environment's root unless sp says otherwise, on the test clock.
func (e *env) newSyncer(t *testing.T, stateDir string, sp syncer.Spec) *syncer.Syncer {
	t.Helper()
	if sp.Name == "" {
		sp.Name = "prod"
	}
	if sp.Env == "" {
		sp.Env = "prod"
	}
	if sp.Root == nil {
		sp.Root = e.root
	}
	s, err := syncer.New([]syncer.Spec{sp}, stateDir, e.policies, syncer.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allowed asks the active policies about an image under reg.example.com.
func (e *env) allowed(t *testing.T, path string) bool {
	t.Helper()
	return e.decide(t, path).Allowed
}

// decide is the active policies' decision on an image under
// reg.example.com.
func (e *env) decide(t *testing.T, path string) *admission.Decision {
	t.Helper()
	obj := fmt.Sprintf(`{"spec":{"containers":[{"name":"c","image":"reg.example.com/%s/app@sha256:%s"}]}}`, path, strings.Repeat("a", 64))
	dec, err := admission.NewDecider(nil).Decide(t.Context(), e.policies.Load(), admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(obj)})
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

// The deny message and the audit annotations name the source's state:
// a deny-all is never passed off as a bundle's verdict.
func TestDenyMessagesNameTheState(t *testing.T) {
	e := newEnv(t)
	s := e.syncer(t, syncer.OnExpiryDenyAll)
	dec := e.decide(t, "v1")
	if msg := dec.Message(); dec.Allowed || !strings.Contains(msg, "(bundle prod: prod pending)") || !strings.Contains(msg, "no verified bundle of prod yet: every image is denied") {
		t.Fatalf("pending: %q", msg)
	}
	if got := dec.Annotations()[admission.AnnotationSourceState]; got != syncer.StatePending {
		t.Fatalf("pending: source-state annotation %q", got)
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if got := e.decide(t, "v1").Annotations(); got[admission.AnnotationSourceState] != syncer.StateEnforcing || got[admission.AnnotationBundleVersion] != "1" {
		t.Fatalf("enforcing: annotations %v", got)
	}
	e.clock.T = e.clock.T.Add(48 * time.Hour)
	s.ApplyExpiry()
	dec = e.decide(t, "v1")
	if msg := dec.Message(); dec.Allowed || !strings.Contains(msg, "(bundle prod: prod deny-all)") || !strings.Contains(msg, "the metadata of prod v1 has expired (onExpiry: deny-all)") {
		t.Fatalf("deny-all: %q", msg)
	}
	if got := dec.Annotations(); got[admission.AnnotationSourceState] != syncer.StateDenyAll || got[admission.AnnotationBundleVersion] != "" {
		t.Fatalf("deny-all: annotations %v", got)
	}
	if st := status(t, s); st.State != syncer.StateDenyAll || st.Ready || st.Applied == nil || !st.Applied.Expired {
		t.Fatalf("deny-all: status %+v", st)
	}
}

func status(t *testing.T, s *syncer.Syncer) syncer.Status {
	t.Helper()
	return s.Statuses()[0]
}

func TestSyncSwapsVerifiedBundles(t *testing.T) {
	e := newEnv(t)
	s := e.syncer(t, "")
	if e.allowed(t, "v1") || s.Ready() {
		t.Fatal("allowed before any bundle was verified")
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "v1") || e.allowed(t, "v2") || !s.Ready() {
		t.Fatal("v1 policies not enforced")
	}
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if e.allowed(t, "v1") || !e.allowed(t, "v2") {
		t.Fatal("v2 policies not enforced")
	}
	st := status(t, s)
	if st.Applied.Version != 2 || !st.Ready || st.LastError != "" || st.Syncs != 2 {
		t.Fatalf("status = %+v", st)
	}
}

// Every failure leaves the last verified policies enforced and says why.
func TestSyncRefusalsKeepTheLastPolicies(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, e *env, s *syncer.Syncer)
		reason  string
	}{
		{"replayed timestamp", func(t *testing.T, e *env, s *syncer.Syncer) {
			old := e.repo.Read(t, "metadata/timestamp.json")
			if _, err := e.repo.RefreshTimestamp(e.repo.Signers); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(t.Context(), "prod"); err != nil { // the client now trusts the newer timestamp
				t.Fatal(err)
			}
			e.repo.Write(t, "metadata/timestamp.json", old)
		}, syncer.ReasonVerificationFailed},
		{"tampered bundle", func(t *testing.T, e *env, _ *syncer.Syncer) {
			rel := e.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
			matches, _ := filepath.Glob(e.repo.Path("targets/prod/" + strings.TrimPrefix(rel.Digest, "sha256:") + ".*"))
			if len(matches) != 1 {
				t.Fatalf("bundle file of %s not found", rel.Digest)
			}
			os.WriteFile(matches[0], []byte("not the signed bytes"), 0o644)
		}, syncer.ReasonVerificationFailed},
		{"policies that do not compile", func(t *testing.T, e *env, _ *syncer.Syncer) {
			e.repo.Publish(t, "prod", "apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {}\n")
		}, syncer.ReasonPoliciesInvalid},
		{"source gone", func(t *testing.T, e *env, _ *syncer.Syncer) {
			os.RemoveAll(e.repo.Dir)
		}, syncer.ReasonFetchFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.syncer(t, "")
			if err := s.Sync(t.Context(), "prod"); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, e, s)
			err := s.Sync(t.Context(), "prod")
			var se *syncer.Error
			if !errors.As(err, &se) || se.Reason != tc.reason {
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
			if !e.allowed(t, "v1") || e.allowed(t, "v3") {
				t.Fatal("the last verified policies are no longer enforced")
			}
			st := status(t, s)
			if st.Ready || st.LastReason != tc.reason || st.LastError == "" || st.Applied.Version != 1 {
				t.Fatalf("status = %+v", st)
			}
		})
	}
}

func TestRestartWithSourceDownServesPersistedBundle(t *testing.T) {
	e := newEnv(t)
	if err := e.syncer(t, "").Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(e.repo.Dir) // the source is down
	e.policies = &admission.Policies{}
	s := e.syncer(t, "")
	s.Restore(t.Context())
	if !e.allowed(t, "v1") || !s.Ready() {
		t.Fatalf("persisted bundle not served: %+v", status(t, s))
	}
	if err := s.Sync(t.Context(), "prod"); err == nil {
		t.Fatal("sync of a missing source succeeded")
	}
	if !e.allowed(t, "v1") {
		t.Fatal("failed sync dropped the persisted bundle")
	}
}

// A persisted state tampered with on disk does not verify, and is not
// served.
func TestRestoreRefusesTamperedState(t *testing.T) {
	e := newEnv(t)
	if err := e.syncer(t, "").Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	targets, _ := filepath.Glob(filepath.Join(e.stateDir, "sources", "prod", "targets", "*"))
	if len(targets) != 1 {
		t.Fatalf("cached targets: %v", targets)
	}
	os.WriteFile(targets[0], []byte("evil"), 0o600)
	os.RemoveAll(e.repo.Dir)
	e.policies = &admission.Policies{}
	s := e.syncer(t, "")
	s.Restore(t.Context())
	if e.allowed(t, "v1") || s.Ready() {
		t.Fatal("a tampered persisted bundle was served")
	}
}

func TestExpiredMetadata(t *testing.T) {
	for _, onExpiry := range []string{syncer.OnExpiryKeep, syncer.OnExpiryDenyAll} {
		t.Run(onExpiry, func(t *testing.T) {
			e := newEnv(t)
			s := e.syncer(t, onExpiry)
			if err := s.Sync(t.Context(), "prod"); err != nil {
				t.Fatal(err)
			}
			e.clock.T = e.clock.T.Add(48 * time.Hour) // the timestamp (24 h) has expired
			err := s.Sync(t.Context(), "prod")
			var se *syncer.Error
			if !errors.As(err, &se) || se.Reason != syncer.ReasonMetadataExpired {
				t.Fatalf("err = %v, want MetadataExpired", err)
			}
			if got, want := e.allowed(t, "v1"), onExpiry == syncer.OnExpiryKeep; got != want {
				t.Fatalf("allowed = %t after expiry with %s", got, onExpiry)
			}
			if st := status(t, s); !st.Applied.Expired {
				t.Fatalf("status does not say expired: %+v", st)
			}
			// A restart with the metadata still expired.
			e.policies = &admission.Policies{}
			r := e.syncer(t, onExpiry)
			r.Restore(t.Context())
			if got, want := e.allowed(t, "v1"), onExpiry == syncer.OnExpiryKeep; got != want {
				t.Fatalf("after restart: allowed = %t with %s", got, onExpiry)
			}
			// Fresh metadata from the repository recovers.
			e.repo.Clock.T = e.clock.T
			if _, err := e.repo.RefreshTimestamp(e.repo.Signers); err != nil {
				t.Fatal(err)
			}
			if err := r.Sync(t.Context(), "prod"); err != nil {
				t.Fatal(err)
			}
			if !e.allowed(t, "v1") || status(t, r).Applied.Expired {
				t.Fatalf("not recovered: %+v", status(t, r))
			}
		})
	}
}

func TestRunSyncsAtIntervalAndOnTrigger(t *testing.T) {
	e := newEnv(t)
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: source.Dir{Path: e.repo.Dir}, Interval: time.Hour})
	run(t, s)
	waitFor(t, func() bool { return e.allowed(t, "v1") })
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	s.Trigger("prod") // an hour-long interval: only the trigger can sync now
	waitFor(t, func() bool { return e.allowed(t, "v2") })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sources come and go while the loop runs (PolicySources in a cluster).
func TestUpsertAndRemoveWhileRunning(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	b.repo.Publish(t, "prod", allowing("reg.example.com/b/**"))
	pols := &admission.Policies{}
	s, err := syncer.New(nil, t.TempDir(), pols, syncer.WithClock(a.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	a.policies, b.policies = pols, pols
	if s.Ready() {
		t.Fatal("ready with no sources")
	}
	run(t, s)

	specA := syncer.Spec{Name: "a", Env: "prod", Root: a.root, Source: source.Dir{Path: a.repo.Dir}, Interval: time.Hour}
	if err := s.Upsert(specA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return a.allowed(t, "v1") && s.Ready() })
	if err := s.Upsert(syncer.Spec{Name: "b", Env: "prod", Root: b.root, Source: source.Dir{Path: b.repo.Dir}, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// b matches reg.example.com/b/**; a has no policy for it: both must
	// be loaded before it is allowed, and a's image stays allowed.
	waitFor(t, func() bool { return a.allowed(t, "b") && s.Ready() })
	if !a.allowed(t, "v1") {
		t.Fatal("a's policies lost")
	}
	// Point a at b's repository: what was verified for a's is dropped.
	specA.Source, specA.Root = source.Dir{Path: b.repo.Dir}, b.root
	if err := s.Upsert(specA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !a.allowed(t, "v1") && a.allowed(t, "b") && s.Ready() })
	s.Remove("a")
	s.Remove("b")
	if a.allowed(t, "b") || s.Ready() || len(s.Statuses()) != 0 {
		t.Fatal("removed sources still take part")
	}
	if err := s.Upsert(syncer.Spec{Name: "bad/name", Env: "prod", Root: a.root, Source: source.Dir{Path: a.repo.Dir}}); err == nil {
		t.Fatal("a bad name was accepted")
	}
}

// A state folder verified under one root is not trusted under another: a
// root rotated away (or a recreated source) starts from the pinned root.
func TestChangedRootClearsState(t *testing.T) {
	e := newEnv(t)
	if err := e.syncer(t, "").Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	other := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	e.root = other.Root(t) // the cluster now pins another root
	e.policies = &admission.Policies{}
	s := e.syncer(t, "")
	s.Restore(t.Context())
	if e.allowed(t, "v1") || s.Ready() {
		t.Fatal("a bundle verified under the old root was served")
	}
	if err := s.Sync(t.Context(), "prod"); err == nil {
		t.Fatal("the repository verified under a root that did not sign it")
	}
}

// A source whose spec cannot be used denies all instead of dropping out.
func TestBlockedSourceDeniesAll(t *testing.T) {
	e := newEnv(t)
	e.repo.Publish(t, "prod", allowing("reg.example.com/v1/**")+"---\napiVersion: policy.ward.dev/v1\nkind: Settings\nmetadata: {name: s}\nspec: {unmatchedImages: allow}\n")
	s := e.syncer(t, "")
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "anything") {
		t.Fatal("unmatched images not allowed")
	}
	s.Block("broken", 1, "prod", "root does not parse")
	if e.allowed(t, "anything") || e.allowed(t, "v1") || s.Ready() {
		t.Fatal("a blocked source does not deny")
	}
	if st := s.Statuses()[1]; st.Stalled != "root does not parse" || st.Ready || st.State != syncer.StateDenyAll || st.ObservedGeneration != 1 {
		t.Fatalf("blocked status = %+v", st)
	}
	s.Remove("broken")
	if !e.allowed(t, "v1") {
		t.Fatal("removing the blocked source did not restore the policies")
	}
}

// A source that cannot be asked past the expiry of the metadata it gave
// counts as expired too: onExpiry deny-all cannot be dodged by taking the
// source down.
func TestExpiryWhileTheSourceIsDown(t *testing.T) {
	for _, onExpiry := range []string{syncer.OnExpiryKeep, syncer.OnExpiryDenyAll} {
		t.Run(onExpiry, func(t *testing.T) {
			e := newEnv(t)
			s := e.syncer(t, onExpiry)
			if err := s.Sync(t.Context(), "prod"); err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(e.repo.Dir)
			e.clock.T = e.clock.T.Add(time.Hour) // still fresh
			s.Sync(t.Context(), "prod")
			if !e.allowed(t, "v1") || status(t, s).Applied.Expired {
				t.Fatal("denied before the metadata expired")
			}
			e.clock.T = e.clock.T.Add(48 * time.Hour)
			err := s.Sync(t.Context(), "prod")
			var se *syncer.Error
			if !errors.As(err, &se) || se.Reason != syncer.ReasonFetchFailed {
				t.Fatalf("err = %v", err)
			}
			if got, want := e.allowed(t, "v1"), onExpiry == syncer.OnExpiryKeep; got != want || !status(t, s).Applied.Expired {
				t.Fatalf("allowed = %t, status = %+v", got, status(t, s))
			}
		})
	}
}

// run runs the loop until the test ends.
func run(t *testing.T, s *syncer.Syncer) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// OnSwap runs once per swap: not for a sync that finds the same bundle.
func TestOnSwapRunsOncePerSwap(t *testing.T) {
	e := newEnv(t)
	swaps := 0
	s, err := syncer.New([]syncer.Spec{{Name: "prod", Env: "prod", Root: e.root, Source: source.Dir{Path: e.repo.Dir}}}, e.stateDir, e.policies,
		syncer.WithClock(e.clock.Now), syncer.WithOnSwap(func() { swaps++ }))
	if err != nil {
		t.Fatal(err)
	}
	for i, publish := range []bool{false, false, true, false} {
		if publish {
			e.repo.Publish(t, "prod", allowing(fmt.Sprintf("reg.example.com/v%d/**", i)))
		}
		if err := s.Sync(t.Context(), "prod"); err != nil {
			t.Fatal(err)
		}
	}
	if swaps != 2 || !e.allowed(t, "v2") {
		t.Fatalf("%d swaps, want 2 (the first bundle, the second)", swaps)
	}
}
