package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ward.dev/ward/admission/registration"

	"ward.dev/ward/internal/apiservertest"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/internal/controller"
	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/server"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/sync/syncer"

	"ward.dev/ward/bundle/keys"
)

// warnings collects the API server's warnings to client-go.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@ward.invalid", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@ward.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
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

var wardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ward-e2e-bin-")
	if err != nil {
		panic(err)
	}
	wardBin = filepath.Join(dir, "ward")
	if out, err := exec.Command("go", "build", "-o", wardBin, "ward.dev/ward/cmd/ward").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "failed to build ward: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func wardCLI(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(wardBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

const labelPolicy = `apiVersion: policy.ward.dev/v1
kind: ValidationPolicy
metadata: {name: pods-have-an-app-label}
spec:
  match: {kinds: [Pod]}
  validations:
  - expression: "has(object.metadata.labels) && 'app' in object.metadata.labels"
    message: Pods need an app label
`

func pod(name, image string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
}

func TestThroughTheAPIServer(t *testing.T) {
	cfg, _, scheme := apiservertest.Start(t, filepath.Join("..", "..", "deploy", "crds"))
	warn := &warnings{}
	wcfg := rest.CopyConfig(cfg)
	wcfg.WarningHandler = warn
	c, err := client.New(wcfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// A policy repository, published to dev.
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "policies")
	wardCLI(t, "init", repo)
	host := signtest.Registry(t, true)
	policy := filepath.Join(repo, "policies", "example-image-policy.yaml")
	data, _ := os.ReadFile(policy)
	os.WriteFile(policy, []byte(strings.Replace(string(data), "registry.example.com/team/**", host+"/team/**", 1)), 0o644)
	os.WriteFile(filepath.Join(repo, "policies", "warn-policy.yaml"), []byte(strings.NewReplacer(
		"registry.example.com/team/**", host+"/warn/**", "mode: enforce ", "mode: warn    ", "signed-team-images", "warn-images").Replace(string(data))), 0o644)
	os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("keys/\ntuf/\n"), 0o644)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "initial policies")
	wardCLI(t, "publish", "--env", "dev", repo)

	// Images: signed with the repository's image key, and not.
	signer, err := keys.Load(ctx, filepath.Join(repo, "keys", "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := imagesign.PushRandomImage(host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := imagesign.SignLegacy(signed, signed, signer); err != nil {
		t.Fatal(err)
	}
	unsigned, _ := imagesign.PushRandomImage(host + "/team/tool:v1")
	warnImg, _ := imagesign.PushRandomImage(host + "/warn/app:v1")

	// ward, in-cluster style: the reconciler follows PolicySources, the
	// sync loop verifies, the webhook serves over HTTPS.
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	pols := &admission.Policies{}
	syn, _ := syncer.New(nil, filepath.Join(tmp, "state"), pols)
	if err := controller.Setup(mgr, syn, controller.Options{Namespace: "default", StateDir: filepath.Join(tmp, "state")}); err != nil {
		t.Fatal(err)
	}
	cert, caFile, err := server.SelfSignedCert(filepath.Join(tmp, "tls"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Listen(server.Options{Addr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Webhook: admission.NewWebhook(admission.NewDecider(imageverify.New()), pols), Syncer: syn})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); syn.Run(runCtx) }()
	go func() { defer wg.Done(); srv.Serve(runCtx) }()
	go func() { defer wg.Done(); mgr.Start(runCtx) }()
	defer func() { cancel(); wg.Wait() }()

	root, _ := os.ReadFile(filepath.Join(repo, "tuf", "metadata", "1.root.json"))
	source := func(env string) *v1alpha1.PolicySource {
		return &v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: env},
			Spec: v1alpha1.PolicySourceSpec{Env: env, Root: string(root), Interval: &metav1.Duration{Duration: time.Hour}, Dir: &v1alpha1.DirSource{Path: filepath.Join(repo, "tuf")}}}
	}
	status := func(name string) *v1alpha1.PolicySource {
		var ps v1alpha1.PolicySource
		if err := c.Get(ctx, types.NamespacedName{Name: name}, &ps); err != nil {
			t.Fatal(err)
		}
		return &ps
	}
	waitVersion := func(name string, v int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s v%d ready", name, v), func() bool {
			ps := status(name)
			return conditions.IsTrue(ps, meta.ReadyCondition) && ps.Status.Applied != nil && ps.Status.Applied.Version == v
		})
	}
	reconcile := func(name, v string) {
		t.Helper()
		ps := status(name)
		if ps.Annotations == nil {
			ps.Annotations = map[string]string{}
		}
		ps.Annotations[meta.ReconcileRequestAnnotation] = v
		if err := c.Update(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, source("dev")); err != nil {
		t.Fatal(err)
	}
	waitVersion("dev", 1)

	ca, _ := os.ReadFile(caFile)
	vwc, mwc := registration.ForURL("ward", srv.Addr(), ca, "kube-system", "ward-system")
	for _, o := range []client.Object{vwc, mwc, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("signed image admitted and pinned to its digest", func(t *testing.T) {
		p := pod("signed", host+"/team/app:v1", map[string]string{"app": "web"})
		eventually(t, "the webhooks to be called", func() bool { return c.Create(ctx, p) == nil })
		var got corev1.Pod
		c.Get(ctx, client.ObjectKeyFromObject(p), &got)
		if got.Spec.Containers[0].Image != signed.String() {
			t.Fatalf("image = %s, want %s", got.Spec.Containers[0].Image, signed)
		}
	})
	t.Run("unsigned image denied with provenance", func(t *testing.T) {
		err := c.Create(ctx, pod("unsigned", unsigned.String(), map[string]string{"app": "tool"}))
		if err == nil || !strings.Contains(err.Error(), "no signatures found") || !strings.Contains(err.Error(), "bundle dev: dev v1") || !strings.Contains(err.Error(), "policy signed-team-images") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("Deployment with an unsigned image denied", func(t *testing.T) {
		replicas := int32(1)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "tool", Namespace: "apps"}, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "tool"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "tool"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "tool", Image: host + "/team/tool:v1"}}}}}}
		if err := c.Create(ctx, d); err == nil || !strings.Contains(err.Error(), "no signatures found") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("warn mode admits with warnings", func(t *testing.T) {
		warn.take()
		if err := c.Create(ctx, pod("warned", warnImg.String(), map[string]string{"app": "w"})); err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(warn.take(), "\n"); !strings.Contains(w, "ward (warn)") || !strings.Contains(w, "policy warn-images") {
			t.Fatalf("warnings = %q", w)
		}
	})

	// A policy change merged and published: enforced without a restart.
	os.WriteFile(filepath.Join(repo, "policies", "app-label.yaml"), []byte(labelPolicy), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "Pods need an app label")
	wardCLI(t, "publish", "--env", "dev", repo)
	reconcile("dev", "v2")
	waitVersion("dev", 2)
	t.Run("policy change enforced without restart", func(t *testing.T) {
		err := c.Create(ctx, pod("nolabel", signed.String(), nil))
		if err == nil || !strings.Contains(err.Error(), "Pods need an app label") || !strings.Contains(err.Error(), "dev v2") {
			t.Fatalf("err = %v", err)
		}
	})

	// Promote dev → staging → prod: the same bytes, each its own source.
	wardCLI(t, "promote", "--from", "dev", "--to", "staging", repo)
	wardCLI(t, "promote", "--from", "staging", "--to", "prod", repo)
	for _, env := range []string{"staging", "prod"} {
		if err := c.Create(ctx, source(env)); err != nil {
			t.Fatal(err)
		}
		waitVersion(env, 1)
	}
	if d, s, p := status("dev").Status.Applied.Digest, status("staging").Status.Applied.Digest, status("prod").Status.Applied.Digest; d != s || s != p {
		t.Fatalf("digests differ: dev %s, staging %s, prod %s", d, s, p)
	}

	// git revert, published as a new, higher version.
	oldTimestamp, _ := os.ReadFile(filepath.Join(repo, "tuf", "metadata", "timestamp.json"))
	git(t, repo, "revert", "--no-edit", "HEAD")
	wardCLI(t, "publish", "--env", "dev", repo)
	reconcile("dev", "v3")
	waitVersion("dev", 3)
	t.Run("revert enforced as a higher version", func(t *testing.T) {
		// staging and prod still require the label (they serve dev v2's bytes).
		err := c.Create(ctx, pod("nolabel2", signed.String(), nil))
		if err == nil || strings.Contains(err.Error(), "dev v3): policy pods-have-an-app-label (dev") {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "bundles dev: dev v3, staging: staging v1, prod: prod v1") {
			t.Fatalf("err = %v", err)
		}
	})

	// A replay of old metadata is refused; the current policy holds.
	good, _ := os.ReadFile(filepath.Join(repo, "tuf", "metadata", "timestamp.json"))
	os.WriteFile(filepath.Join(repo, "tuf", "metadata", "timestamp.json"), oldTimestamp, 0o644)
	reconcile("dev", "replay")
	eventually(t, "the replay refused on status", func() bool {
		ps := status("dev")
		return conditions.IsFalse(ps, meta.ReadyCondition) && conditions.GetReason(ps, meta.ReadyCondition) == syncer.ReasonVerificationFailed
	})
	if err := c.Create(ctx, pod("unsigned2", unsigned.String(), map[string]string{"app": "x"})); err == nil || !strings.Contains(err.Error(), "dev v3") {
		t.Fatalf("after the replay: err = %v", err)
	}
	if ps := status("dev"); ps.Status.Applied.Version != 3 || !strings.Contains(conditions.GetMessage(ps, meta.ReadyCondition), "still enforcing dev v3") {
		t.Fatalf("dev status = %+v", ps.Status)
	}
	os.WriteFile(filepath.Join(repo, "tuf", "metadata", "timestamp.json"), good, 0o644)
}
