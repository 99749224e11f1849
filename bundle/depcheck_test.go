package bundle_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries pins the one-way data flow: the bundle packages never
// import Kubernetes client code or the controller's later stages.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "ward.dev/ward/admission", "ward.dev/ward/policies", "ward.dev/ward/sync"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("package bundle/... depends on %s", dep)
			}
		}
	}
}
