package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/internal/apiservertest"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ward.dev/ward/internal/certs"
	"ward.dev/ward/internal/manifests"
)

// render runs `kustomize build` (built by hack/kustomize.sh) on dir.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kustomize := os.Getenv("WARD_KUSTOMIZE")
	if kustomize == "" {
		t.Fatal("WARD_KUSTOMIZE is not set: run `make test`, or export WARD_KUSTOMIZE=$(hack/kustomize.sh)")
	}
	out, err := exec.Command(kustomize, "build", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, out)
	}
	objs, err := manifests.Parse("kustomize build", out)
	if err != nil {
		t.Fatal(err)
	}
	var us []*unstructured.Unstructured
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Raw); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	// CRDs and namespaces first, as kubectl apply orders them.
	sort.SliceStable(us, func(i, j int) bool { return rank(us[i].GetKind()) < rank(us[j].GetKind()) })
	return us
}

func rank(kind string) int {
	switch kind {
	case "CustomResourceDefinition":
		return 0
	case "Namespace":
		return 1
	}
	return 2
}

// TestDeployManifests renders deploy/base with kustomize and applies it to a
// real API server with server-side apply, then lets ward's certificate manager make the serving
// certificate and fill in the caBundle, and rotate it.
func TestDeployManifests(t *testing.T) {
	_, c, _ := apiservertest.Start(t)
	ctx := t.Context()
	objs := render(t, filepath.Join("..", "..", "deploy", "base"))
	kinds := map[string]bool{}
	for _, u := range objs {
		kinds[u.GetKind()] = true
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("ward-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, want := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget", "Service", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		if !kinds[want] {
			t.Errorf("deploy/base has no %s", want)
		}
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ward-system", Name: "ward"}, &d); err != nil {
		t.Fatal(err)
	}
	ct := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 2 || ct.ReadinessProbe == nil || ct.LivenessProbe == nil || ct.Resources.Requests.Cpu().IsZero() || !strings.Contains(ct.Image, "ghcr.io/ward-dev/ward") {
		t.Fatalf("deployment = %+v", d.Spec)
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, types.NamespacedName{Name: "ward"}, &v); err != nil {
		t.Fatal(err)
	}
	if *v.Webhooks[0].FailurePolicy != admissionregistrationv1.Fail || !strings.Contains(v.Webhooks[0].NamespaceSelector.String(), "ward-system") {
		t.Fatalf("webhook = %+v", v.Webhooks[0])
	}

	// ward's certificate manager, as the Deployment runs it.
	now := time.Now()
	m := &certs.Manager{Client: c, Reader: c, Namespace: "ward-system", Secret: "ward-webhook-tls", Service: "ward", WebhookConfig: "ward", Now: func() time.Time { return now }}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ward-system", Name: "ward-webhook-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	caBundle := func() [][]byte {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		var mw admissionregistrationv1.MutatingWebhookConfiguration
		c.Get(ctx, types.NamespacedName{Name: "ward"}, &v)
		c.Get(ctx, types.NamespacedName{Name: "ward"}, &mw)
		return [][]byte{v.Webhooks[0].ClientConfig.CABundle, mw.Webhooks[0].ClientConfig.CABundle}
	}
	for _, b := range caBundle() {
		if !bytes.Equal(b, s.Data["ca.crt"]) {
			t.Fatal("caBundle not written")
		}
	}
	serving := func() *x509.Certificate {
		cert, err := m.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.Data["ca.crt"])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "ward.ward-system.svc", CurrentTime: now}); err != nil {
			t.Fatalf("serving certificate does not verify for the Service: %v", err)
		}
		return leaf
	}
	first := serving()

	// Eleven months later: the serving certificate is renewed under the
	// same CA, so the caBundle stays valid through the rotation.
	now = now.Add(340 * 24 * time.Hour)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := serving()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the serving certificate was not renewed")
	}
	for _, b := range caBundle() {
		if !bytes.Equal(b, s.Data["ca.crt"]) {
			t.Fatal("the CA changed with the serving certificate")
		}
	}
}

// TestHelmChart renders the chart with helm (built by hack/helm.sh) and
// applies it, CRDs first, to a real API server; the cert-manager variant
// renders its Certificate and the CA injection.
func TestHelmChart(t *testing.T) {
	helm := os.Getenv("WARD_HELM")
	if helm == "" {
		t.Fatal("WARD_HELM is not set: run `make test`, or export WARD_HELM=$(hack/helm.sh)")
	}
	chart := filepath.Join("..", "..", "deploy", "chart", "ward")
	template := func(args ...string) []manifests.Object {
		t.Helper()
		out, err := exec.Command(helm, append([]string{"template", "ward", chart, "--namespace", "ward-system", "--include-crds"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		objs, err := manifests.Parse("helm template", out)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	withCM := template("--set", "certManager.enabled=true")
	found := map[string]bool{}
	for _, o := range withCM {
		found[o.Kind] = true
		if o.Kind == "ValidatingWebhookConfiguration" && !strings.Contains(string(o.Raw), "cert-manager.io/inject-ca-from") {
			t.Error("no CA injection with cert-manager")
		}
	}
	if !found["Certificate"] || !found["Issuer"] {
		t.Fatalf("cert-manager variant renders %v", found)
	}

	_, c, _ := apiservertest.Start(t)
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName("ward-system")
	if err := c.Patch(t.Context(), ns, client.Apply, client.FieldOwner("ward-e2e")); err != nil {
		t.Fatal(err)
	}
	objs := template()
	// CRDs first, as helm installs them.
	sort.SliceStable(objs, func(i, j int) bool {
		return objs[i].Kind == "CustomResourceDefinition" && objs[j].Kind != "CustomResourceDefinition"
	})
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Raw); err != nil {
			t.Fatal(err)
		}
		if err := c.Patch(t.Context(), u, client.Apply, client.FieldOwner("ward-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	var d appsv1.Deployment
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: "ward-system", Name: "ward"}, &d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "), "--webhook-tls-secret=ward-webhook-tls") {
		t.Fatalf("args = %v", d.Spec.Template.Spec.Containers[0].Args)
	}

	// helm lint --strict; every option rendered and applied; an unknown
	// key refused by values.schema.json.
	if out, err := exec.Command(helm, "lint", "--strict", chart).CombinedOutput(); err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
	if out, err := exec.Command(helm, "template", "ward", chart, "--set", "nodeSelectr.x=y").CombinedOutput(); err == nil || !strings.Contains(string(out), "additional properties 'nodeSelectr' not allowed") {
		t.Fatalf("an unknown key: %v\n%s", err, out)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`image: {digest: "sha256:`+strings.Repeat("a", 64)+`"}
imagePullSecrets: [{name: regcred}]
replicas: 1
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: infra, operator: Exists}]}]}}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: ward}}}]
priorityClassName: system-cluster-critical
podAnnotations: {example.com/scrape: "true"}
podLabels: {team: platform}
serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/ward"}}
extraArgs: [--log-level=debug]
env: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]
webhook: {optOutLabel: example.com/no-ward}
namespace: {create: true, podSecurity: restricted}
metrics: {serviceMonitor: {enabled: true, labels: {release: prometheus}}, grafanaDashboard: {enabled: true}}
networkPolicy: {enabled: true, httpFrom: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	all := template("-f", values)
	kinds := map[string]int{}
	for _, o := range all {
		kinds[o.Kind]++
		if o.Kind == "ServiceMonitor" {
			continue // its CRD is the Prometheus Operator's
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Raw); err != nil {
			t.Fatal(err)
		}
		if err := c.Patch(t.Context(), u, client.Apply, client.FieldOwner("ward-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s with every option: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if kinds["PodDisruptionBudget"] != 0 || kinds["ServiceMonitor"] != 1 || kinds["NetworkPolicy"] != 1 || kinds["Namespace"] != 1 || kinds["ConfigMap"] != 1 {
		t.Fatalf("rendered kinds with every option: %v", kinds)
	}
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: "ward-system", Name: "ward"}, &d); err != nil {
		t.Fatal(err)
	}
	ps := d.Spec.Template.Spec
	switch {
	case ps.Containers[0].Image != "ghcr.io/ward-dev/ward@sha256:"+strings.Repeat("a", 64):
		t.Errorf("image %s", ps.Containers[0].Image)
	case ps.NodeSelector["kubernetes.io/os"] != "linux", len(ps.Tolerations) != 1, ps.Affinity.NodeAffinity == nil, len(ps.TopologySpreadConstraints) != 1:
		t.Errorf("scheduling: %+v", ps)
	case ps.PriorityClassName != "system-cluster-critical", len(ps.ImagePullSecrets) != 1:
		t.Errorf("priority %q, pull secrets %v", ps.PriorityClassName, ps.ImagePullSecrets)
	case d.Spec.Template.Annotations["example.com/scrape"] != "true", d.Spec.Template.Labels["team"] != "platform":
		t.Errorf("pod metadata %v %v", d.Spec.Template.Annotations, d.Spec.Template.Labels)
	case !slices.Contains(ps.Containers[0].Args, "--log-level=debug"), len(ps.Containers[0].Env) != 2:
		t.Errorf("args %v, env %v", ps.Containers[0].Args, ps.Containers[0].Env)
	}
	var wardNS corev1.Namespace
	if err := c.Get(t.Context(), types.NamespacedName{Name: "ward-system"}, &wardNS); err != nil || wardNS.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace labels %v, %v", wardNS.Labels, err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(t.Context(), types.NamespacedName{Name: "ward"}, &vwc); err != nil {
		t.Fatal(err)
	}
	if sel := vwc.Webhooks[0].NamespaceSelector; len(sel.MatchExpressions) != 2 || sel.MatchExpressions[1].Key != "example.com/no-ward" {
		t.Errorf("namespace opt-out: %+v", sel)
	}
}

// TestDeployComponents applies deploy/base with every kustomize component
// (the chart's options for kustomize users) to a real API server.
func TestDeployComponents(t *testing.T) {
	_, c, _ := apiservertest.Start(t)
	objs := render(t, filepath.Join("testdata", "all-components"))
	kinds := map[string]int{}
	for _, u := range objs {
		kinds[u.GetKind()]++
		if u.GetKind() == "ServiceMonitor" {
			continue // its CRD is the Prometheus Operator's
		}
		if err := c.Patch(t.Context(), u, client.Apply, client.FieldOwner("ward-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if kinds["PodDisruptionBudget"] != 0 || kinds["ServiceMonitor"] != 1 || kinds["NetworkPolicy"] != 1 {
		t.Fatalf("kinds %v", kinds)
	}
	var d appsv1.Deployment
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: "ward-system", Name: "ward"}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" || d.Spec.Template.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("deployment: %+v", d.Spec.Template.Spec)
	}
	var ns corev1.Namespace
	if err := c.Get(t.Context(), types.NamespacedName{Name: "ward-system"}, &ns); err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %v %v", ns.Labels, err)
	}
	for _, wh := range []client.Object{&admissionregistrationv1.ValidatingWebhookConfiguration{}, &admissionregistrationv1.MutatingWebhookConfiguration{}} {
		if err := c.Get(t.Context(), types.NamespacedName{Name: "ward"}, wh); err != nil {
			t.Fatal(err)
		}
		var sel *metav1.LabelSelector
		switch w := wh.(type) {
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			sel = w.Webhooks[0].NamespaceSelector
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			sel = w.Webhooks[0].NamespaceSelector
		}
		if len(sel.MatchExpressions) != 2 || sel.MatchExpressions[1].Key != "ward.dev/ignore" {
			t.Errorf("%T namespace selector %+v", wh, sel)
		}
	}
}
