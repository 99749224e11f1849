package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/sync/config"
	"ward.dev/ward/sync/source"
)

// oci.provider, as Flux's OCIRepository provider: a cloud's registry
// credentials for the artifact, never together with a secretRef.
func TestOCIProvider(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pull"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pull", ".dockerconfigjson"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ps := func(oci v1alpha1.OCISource) v1alpha1.PolicySource {
		return v1alpha1.PolicySource{ObjectMeta: metav1.ObjectMeta{Name: "prod"},
			Spec: v1alpha1.PolicySourceSpec{Env: "prod", RootFile: "root.json", OCI: &oci}}
	}
	const url = "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/policies:tuf"
	for _, tc := range []struct {
		name     string
		oci      v1alpha1.OCISource
		keychain bool
		err      string
	}{
		{"generic", v1alpha1.OCISource{URL: url, Provider: "generic"}, false, ""},
		{"none", v1alpha1.OCISource{URL: url}, false, ""},
		{"aws", v1alpha1.OCISource{URL: url, Provider: "aws"}, true, ""},
		{"azure", v1alpha1.OCISource{URL: "oci://ward.azurecr.io/policies:tuf", Provider: "azure"}, true, ""},
		{"gcp", v1alpha1.OCISource{URL: "oci://europe-docker.pkg.dev/acme/policies/tuf:prod", Provider: "gcp"}, true, ""},
		{"unknown", v1alpha1.OCISource{URL: url, Provider: "ibm"}, false, `oci.provider is "ibm", want generic, aws, azure or gcp`},
		{"with a secret", v1alpha1.OCISource{URL: url, Provider: "aws", SecretRef: &v1alpha1.LocalRef{Name: "pull"}}, false, "oci.secretRef and oci.provider aws exclude each other"},
		{"another cloud's registry", v1alpha1.OCISource{URL: "oci://ward.azurecr.io/policies:tuf", Provider: "gcp"}, false, "oci.provider gcp: ward.azurecr.io is not a registry of that cloud"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := config.Spec(ps(tc.oci), config.FileResolver{Dir: dir}, t.TempDir())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			oci, ok := sp.Source.(*source.OCI)
			if !ok {
				t.Fatalf("source %T", sp.Source)
			}
			if (oci.Keychain != nil) != tc.keychain {
				t.Fatalf("keychain %v, want one: %t", oci.Keychain, tc.keychain)
			}
		})
	}
}
