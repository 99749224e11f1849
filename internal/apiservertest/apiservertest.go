// Package apiservertest runs a real kube-apiserver and etcd for tests,
// through controller-runtime's envtest, from the binaries
// hack/kube-assets.sh builds (`make test` exports KUBEBUILDER_ASSETS).
package apiservertest

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"ward.dev/ward/api/v1alpha1"
)

// Start runs an API server until the test ends, with the CRDs of crdDirs
// installed, and returns its config, a client and a scheme that knows
// Kubernetes' types and ward's.
func Start(t testing.TB, crdDirs ...string) (*rest.Config, client.Client, *runtime.Scheme) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/kube-assets.sh)")
	}
	env := &envtest.Environment{CRDDirectoryPaths: crdDirs, ErrorIfCRDPathMissing: len(crdDirs) > 0, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start the API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c, scheme
}
