package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/internal/apiservertest"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"ward.dev/ward/admission"
	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/internal/controller"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/syncer"
)

func allowing(glob string) string {
	return fmt.Sprintf("apiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: allow}\nspec:\n  images: [{glob: %q}]\n  authorities: [{static: {action: pass}}]\n", glob)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startController runs ward's controllers and sync loop, on clock, with a
// manager of their own (several tests run one in this process), until the
// test ends.
func startController(t *testing.T, cfg *rest.Config, scheme *runtime.Scheme, clock *tuftest.Clock) *syncer.Syncer {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	syn, err := syncer.New(nil, t.TempDir(), &admission.Policies{}, syncer.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if err := controller.Setup(mgr, syn, controller.Options{Namespace: "default", StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); syn.Run(ctx) }()
	go func() { mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return syn
}

func TestPolicySourceStatusInARealAPIServer(t *testing.T) {
	cfg, c, scheme := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	repo.Publish(t, "prod", allowing("reg.example.com/v1/**"))
	clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}

	syn := startController(t, cfg, scheme, clock)

	ps := &v1alpha1.PolicySource{
		ObjectMeta: metav1.ObjectMeta{Name: "prod"},
		Spec:       v1alpha1.PolicySourceSpec{Env: "prod", Root: string(repo.Root(t)), Interval: &metav1.Duration{Duration: time.Hour}, Dir: &v1alpha1.DirSource{Path: repo.Dir}},
	}
	if err := c.Create(t.Context(), ps); err != nil {
		t.Fatal(err)
	}
	get := func() *v1alpha1.PolicySource {
		var got v1alpha1.PolicySource
		if err := c.Get(t.Context(), types.NamespacedName{Name: "prod"}, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	eventually(t, "Ready with v1", func() bool {
		got := get()
		return conditions.IsTrue(got, meta.ReadyCondition) && got.Status.Applied != nil && got.Status.Applied.Version == 1
	})
	if got := get(); !strings.Contains(conditions.GetMessage(got, meta.ReadyCondition), "enforcing prod v1") || got.Status.ObservedGeneration != got.Generation {
		t.Fatalf("status = %+v", got.Status)
	}

	// A new version, and a reconcile request (as `flux reconcile` makes).
	repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	request := func(v string) {
		got := get()
		if got.Annotations == nil {
			got.Annotations = map[string]string{}
		}
		got.Annotations[meta.ReconcileRequestAnnotation] = v
		if err := c.Update(t.Context(), got); err != nil {
			t.Fatal(err)
		}
	}
	request("one")
	eventually(t, "v2 applied", func() bool {
		got := get()
		return got.Status.Applied != nil && got.Status.Applied.Version == 2 && got.Status.LastHandledReconcileAt == "one"
	})

	// A replayed timestamp: refused; v2 stays enforced and status says so.
	old := repo.Read(t, "metadata/timestamp.json")
	repo.RefreshTimestamp(repo.Signers)
	request("two")
	eventually(t, "refresh synced", func() bool {
		return get().Status.LastHandledReconcileAt == "two" && syn.Statuses()[0].LastError == "" && syn.Statuses()[0].Syncs >= 3
	})
	repo.Write(t, "metadata/timestamp.json", old)
	request("three")
	eventually(t, "refusal on status", func() bool {
		got := get()
		return conditions.IsFalse(got, meta.ReadyCondition) && conditions.GetReason(got, meta.ReadyCondition) == syncer.ReasonVerificationFailed
	})
	got := get()
	if got.Status.Applied.Version != 2 || !strings.Contains(conditions.GetMessage(got, meta.ReadyCondition), "still enforcing prod v2") {
		t.Fatalf("status after refusal = %+v", got.Status)
	}
	eventually(t, "a warning event", func() bool {
		var evs eventsv1.EventList
		if err := c.List(t.Context(), &evs); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "prod" && e.Reason == syncer.ReasonVerificationFailed && e.Type == "Warning" {
				return true
			}
		}
		return false
	})

	// A spec the loop cannot use is Stalled.
	bad := &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", Dir: &v1alpha1.DirSource{Path: repo.Dir}}}
	if err := c.Create(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Stalled", func() bool {
		var b v1alpha1.PolicySource
		if err := c.Get(t.Context(), types.NamespacedName{Name: "broken"}, &b); err != nil {
			return false
		}
		return conditions.IsTrue(&b, meta.StalledCondition) && conditions.GetReason(&b, meta.StalledCondition) == syncer.ReasonInvalidSpec &&
			b.Status.State == syncer.StateDenyAll && b.Status.ObservedGeneration == b.Generation
	})

	// Another root and repository: what was verified for the old one is
	// nothing now. Status must say pending at once (every image denied),
	// never "Ready, enforcing v2" for the new generation; the new
	// repository has no prod bundle, so the source stays pending.
	other := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	changed := get()
	changed.Spec.Root, changed.Spec.Dir.Path = string(other.Root(t)), other.Dir
	if err := c.Update(t.Context(), changed); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pending under the new generation", func() bool {
		got := get()
		return got.Status.ObservedGeneration == got.Generation && got.Status.State == syncer.StatePending &&
			conditions.IsFalse(got, meta.ReadyCondition) && got.Status.Applied == nil && !conditions.IsTrue(got, meta.ReconcilingCondition)
	})
	if !strings.Contains(conditions.GetMessage(get(), meta.ReadyCondition), "every image is denied") {
		t.Fatalf("Ready message does not say every image is denied: %q", conditions.GetMessage(get(), meta.ReadyCondition))
	}
	if st := syn.Statuses()[0]; st.State != syncer.StatePending || st.Ready {
		t.Fatalf("syncer status = %+v", st)
	}

	// Deleting a PolicySource takes its policies out.
	if err := c.Delete(t.Context(), get()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "source removed", func() bool {
		for _, name := range syn.Sources() {
			if name == "prod" {
				return false
			}
		}
		return true
	})
}

// Two replicas: both follow the PolicySource, sync and enforce; one
// elected leader holds the lease and writes status.
func TestEveryReplicaSyncsOneLeaderWritesStatus(t *testing.T) {
	cfg, c, scheme := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	repo.Publish(t, "prod", allowing("reg.example.com/v1/**"))
	clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}
	ctx, cancel := context.WithCancel(t.Context())
	var syncers []*syncer.Syncer
	var dones []chan struct{}
	for range 2 {
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			LeaderElection: true, LeaderElectionID: "ward-status-writer", LeaderElectionNamespace: "default",
			Controller:    ctrlconfig.Controller{SkipNameValidation: ptr(true)}, // two replicas in one process
			LeaseDuration: ptr(4 * time.Second), RenewDeadline: ptr(3 * time.Second), RetryPeriod: ptr(500 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		syn, err := syncer.New(nil, t.TempDir(), &admission.Policies{}, syncer.WithClock(clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		if err := controller.Setup(mgr, syn, controller.Options{Namespace: "default", StateDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); syn.Run(ctx) }()
		go func() { mgr.Start(ctx) }()
		syncers, dones = append(syncers, syn), append(dones, done)
	}
	defer func() {
		cancel()
		for _, d := range dones {
			<-d
		}
	}()
	ps := &v1alpha1.PolicySource{
		ObjectMeta: metav1.ObjectMeta{Name: "prod"},
		Spec:       v1alpha1.PolicySourceSpec{Env: "prod", Root: string(repo.Root(t)), Interval: &metav1.Duration{Duration: time.Hour}, Dir: &v1alpha1.DirSource{Path: repo.Dir}},
	}
	if err := c.Create(t.Context(), ps); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both replicas enforce v1", func() bool {
		for _, s := range syncers {
			if !s.Ready() {
				return false
			}
		}
		return true
	})
	eventually(t, "status written by the leader", func() bool {
		var got v1alpha1.PolicySource
		if err := c.Get(t.Context(), types.NamespacedName{Name: "prod"}, &got); err != nil {
			return false
		}
		return conditions.IsTrue(&got, meta.ReadyCondition)
	})
	var lease coordinationv1.Lease
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: "default", Name: "ward-status-writer"}, &lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("no leader lease: %v %+v", err, lease.Spec)
	}
	// controller-runtime's own metrics, which ward serves beside its own
	// (ward serve gathers this registry too).
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"controller_runtime_reconcile_total", "workqueue_adds_total", "leader_election_master_status"} {
		if !have[name] {
			t.Errorf("controller-runtime's registry lacks %s", name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The CRD's validation rules: kubectl apply refuses a PolicySource with no
// pinned root, with two sources or with two kinds of registry credentials,
// instead of accepting it and stalling.
func TestPolicySourceValidationRules(t *testing.T) {
	_, c, _ := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	for _, tc := range []struct {
		name string
		spec v1alpha1.PolicySourceSpec
		want string
	}{
		{"no root", v1alpha1.PolicySourceSpec{Env: "prod", Dir: &v1alpha1.DirSource{Path: "/tuf"}}, "exactly one of root, rootFile and rootConfigMap is required"},
		{"two roots", v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", RootFile: "/root.json", Dir: &v1alpha1.DirSource{Path: "/tuf"}}, "exactly one of root, rootFile and rootConfigMap is required"},
		{"no source", v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}"}, "exactly one source is required: dir, git or oci"},
		{"two sources", v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", Dir: &v1alpha1.DirSource{Path: "/tuf"}, Git: &v1alpha1.GitSource{URL: "https://git.example.com/p.git"}}, "exactly one source is required: dir, git or oci"},
		{"secret and cloud provider", v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", OCI: &v1alpha1.OCISource{URL: "oci://r.example.com/p:tuf", Provider: "aws", SecretRef: &v1alpha1.LocalRef{Name: "pull"}}}, "secretRef and a cloud provider exclude each other"},
		{"unknown provider", v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", OCI: &v1alpha1.OCISource{URL: "oci://r.example.com/p:tuf", Provider: "ibm"}}, `Unsupported value: "ibm"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(t.Context(), &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "invalid"}, Spec: tc.spec})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	ok := &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "valid"}, Spec: v1alpha1.PolicySourceSpec{Env: "prod", Root: "{}", Dir: &v1alpha1.DirSource{Path: "/tuf"}}}
	if err := c.Create(t.Context(), ok); err != nil {
		t.Fatalf("a valid PolicySource: %v", err)
	}
}

// The ConfigMap holding a PolicySource's pinned root is watched: created
// after the PolicySource, or changed, it takes effect at once, without a
// spec change (the periodic retry is a minute away).
func TestReferencedConfigMapWatched(t *testing.T) {
	cfg, c, scheme := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	repo.Publish(t, "prod", allowing("reg.example.com/v1/**"))
	other := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}
	syn := startController(t, cfg, scheme, clock)

	ps := &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.PolicySourceSpec{Env: "prod",
		RootConfigMap: &v1alpha1.KeyRef{Name: "roots", Key: "root.json"}, Interval: &metav1.Duration{Duration: time.Hour}, Dir: &v1alpha1.DirSource{Path: repo.Dir}}}
	if err := c.Create(t.Context(), ps); err != nil {
		t.Fatal(err)
	}
	status := func() syncer.Status {
		st, _ := syn.Status("prod")
		return st
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 20 s: %s (status %+v)", what, status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	within("the missing ConfigMap reported", func() bool { return strings.Contains(status().Stalled, "roots") })
	// The ConfigMap appears, with another repository's root: the source
	// follows it, and the bundle does not verify.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "roots", Namespace: "default"}, Data: map[string]string{"root.json": string(other.Root(t))}}
	if err := c.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	within("the ConfigMap's root used", func() bool { st := status(); return st.Stalled == "" && st.LastError != "" })
	// The right root: enforcing, without touching the PolicySource.
	cm.Data["root.json"] = string(repo.Root(t))
	if err := c.Update(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	within("the new root enforcing v1", func() bool { st := status(); return st.Ready && st.Applied != nil && st.Applied.Version == 1 })
}

// A Secret a PolicySource refers to is watched like its ConfigMap: created
// after the PolicySource, it is read at once, without a spec change (the
// periodic retry is an hour away here).
func TestReferencedSecretWatched(t *testing.T) {
	cfg, c, scheme := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	repo := tuftest.NewRepo(t, tuftest.Options{Envs: []string{"prod"}})
	clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}
	syn := startController(t, cfg, scheme, clock)
	ps := &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.PolicySourceSpec{Env: "prod",
		Root: string(repo.Root(t)), Interval: &metav1.Duration{Duration: time.Hour},
		OCI: &v1alpha1.OCISource{URL: "oci://127.0.0.1:1/policies:tuf", SecretRef: &v1alpha1.LocalRef{Name: "regcred"}}}}
	if err := c.Create(t.Context(), ps); err != nil {
		t.Fatal(err)
	}
	status := func() syncer.Status {
		st, _ := syn.Status("prod")
		return st
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 20 s: %s (status %+v)", what, status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	within("the missing Secret reported", func() bool { return strings.Contains(status().Stalled, "regcred") })
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: "default"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}}
	if err := c.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	// Read: the source is no longer stalled on it, and tries the registry.
	within("the Secret read", func() bool { st := status(); return st.Stalled == "" && st.LastError != "" })
}
