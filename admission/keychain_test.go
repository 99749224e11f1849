package admission_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"ward.dev/ward/admission"
)

func TestPullSecretKeychain(t *testing.T) {
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{"registry.example.com": map[string]string{"username": "puller", "password": "s3cret"}}})
	client := fake.NewSimpleClientset(
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "apps"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-secret"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sa-secret", Namespace: "apps"}, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}},
	)
	kc, err := admission.PullSecretKeychain(client)(t.Context(), "apps", "builder", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(client.Actions()); n != 0 {
		t.Fatalf("%d API calls before any registry was asked", n)
	}
	repo, _ := name.NewRepository("registry.example.com/team/app")
	auth, err := kc.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if ac.Username != "puller" || ac.Password != "s3cret" {
		t.Fatalf("credentials = %s/%s", ac.Username, ac.Password)
	}
	other, _ := name.NewRepository("other.example.com/app")
	if a, _ := kc.Resolve(other); a != authn.Anonymous {
		t.Errorf("credentials for another registry: %v", a)
	}
}
