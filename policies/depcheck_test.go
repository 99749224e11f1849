package policies_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries pins the data flow bundle → policies → admission:
// policies never import Kubernetes client or controller code, nor the
// admission or sync stages.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "ward.dev/ward/admission", "ward.dev/ward/sync", "github.com/sigstore/cosign"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("package policies depends on %s", dep)
			}
		}
	}
}
