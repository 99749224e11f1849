package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"k8s.io/client-go/kubernetes"
)

// NoServiceAccount, as a KeychainFunc's service account, asks for the
// named pull secrets only (policy-controller's signaturePullSecrets).
const NoServiceAccount = kauth.NoServiceAccount

// keychainTimeout bounds reading a workload's pull secrets.
const keychainTimeout = 5 * time.Second

// PullSecretKeychain returns registry credentials the way the kubelet
// finds them: the workload's imagePullSecrets, then its service account's,
// read from the API server with client. Nothing is read until a registry
// is actually asked (a cached decision reads no secrets).
func PullSecretKeychain(client kubernetes.Interface) KeychainFunc {
	return func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error) {
		return &lazyKeychain{load: func() (authn.Keychain, error) {
			// Detached from the request that asked first: a lookup shared
			// by concurrent requests must not fail when that one gives up.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keychainTimeout)
			defer cancel()
			kc, err := kauth.New(ctx, client, kauth.Options{Namespace: namespace, ServiceAccountName: serviceAccount, ImagePullSecrets: pullSecrets})
			if err != nil {
				return nil, fmt.Errorf("failed to read the pull secrets of %s/%s: %w", namespace, serviceAccount, err)
			}
			return kc, nil
		}}, nil
	}
}

// lazyKeychain loads its keychain on first use.
type lazyKeychain struct {
	once sync.Once
	load func() (authn.Keychain, error)
	kc   authn.Keychain
	err  error
}

// Resolve implements authn.Keychain.
func (l *lazyKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	l.once.Do(func() { l.kc, l.err = l.load() })
	if l.err != nil {
		return nil, l.err
	}
	return l.kc.Resolve(r)
}
