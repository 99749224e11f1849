// Package registryauth gives registry credentials from the cloud a
// workload runs in, as a go-containerregistry keychain:
//
//   - aws: Amazon ECR (private and public), through the ECR credential
//     helper's client and the AWS SDK's credential chain (IAM roles for
//     service accounts or EKS Pod Identity, instance roles, environment).
//   - gcp: Google Artifact Registry and Container Registry, through
//     Application Default Credentials (GKE Workload Identity, the metadata
//     server, GOOGLE_APPLICATION_CREDENTIALS).
//   - azure: Azure Container Registry, an Entra ID token (AKS workload
//     identity, managed identity, environment) exchanged at the registry
//     for a refresh token, as `az acr login` does.
//
// Each provider answers only for its own registries and is anonymous to
// any other, so the keychain chains after pull secrets. Credentials are
// never logged.
package registryauth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Provider names a cloud whose registries a keychain authenticates to.
type Provider string

// The providers, named as Flux names them (OCIRepository spec.provider).
const (
	AWS   Provider = "aws"
	Azure Provider = "azure"
	GCP   Provider = "gcp"
)

// Providers are all of them.
var Providers = []Provider{AWS, Azure, GCP}

// ParseProviders reads a comma-separated list ("aws,azure,gcp"); "" and
// "none" are no provider.
func ParseProviders(s string) ([]Provider, error) {
	var out []Provider
	if s == "" || s == "none" {
		return nil, nil
	}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(Providers, Provider(p)) {
			return nil, fmt.Errorf("unknown registry credential provider %q (want aws, azure, gcp or none)", p)
		}
		if !slices.Contains(out, Provider(p)) {
			out = append(out, Provider(p))
		}
	}
	return out, nil
}

// resolveTimeout bounds one credential exchange.
const resolveTimeout = 30 * time.Second

// New returns a keychain for the providers. A registry of a provider's
// whose credentials cannot be had is an error naming the provider (a
// caller that prefers anonymous access then wraps it in OrAnonymous); any
// other registry is anonymous.
func New(providers []Provider, opts ...Option) authn.Keychain {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	var kcs []providerKeychain
	for _, p := range providers {
		switch p {
		case AWS:
			kcs = append(kcs, newECR(o))
		case GCP:
			kcs = append(kcs, newGoogle())
		case Azure:
			kcs = append(kcs, newACR(o))
		}
	}
	return &keychain{providers: kcs}
}

// Option configures New.
type Option func(*options)

type options struct {
	acrEndpoint func(host string) string
	httpClient  *http.Client
	now         func() time.Time
}

// providerKeychain is one cloud: handles tells whether a registry is its.
type providerKeychain interface {
	handles(host string) bool
	resolve(ctx context.Context, host string) (authn.Authenticator, error)
}

type keychain struct{ providers []providerKeychain }

// Resolve implements authn.Keychain.
func (k *keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	return k.ResolveContext(ctx, r)
}

// ResolveContext implements authn.ContextKeychain.
func (k *keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	for _, p := range k.providers {
		if p.handles(host) {
			return p.resolve(ctx, host)
		}
	}
	return authn.Anonymous, nil
}

// OrAnonymous turns kc's errors into anonymous access: for image
// verification, where a registry that needs no credentials must not fail
// because the cloud's credentials are missing.
func OrAnonymous(kc authn.Keychain) authn.Keychain { return orAnonymous{kc} }

type orAnonymous struct{ kc authn.Keychain }

func (o orAnonymous) Resolve(r authn.Resource) (authn.Authenticator, error) {
	a, err := o.kc.Resolve(r)
	if err != nil {
		return authn.Anonymous, nil
	}
	return a, nil
}

// cache keeps a registry's credentials until shortly before they expire;
// failures are not kept.
type cache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	auth    authn.Authenticator
	expires time.Time
}

// renewBefore is how long before expiry credentials are exchanged again.
const renewBefore = 5 * time.Minute

func (c *cache) get(host string, fetch func() (authn.Authenticator, time.Time, error)) (authn.Authenticator, error) {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	c.mu.Lock()
	e, ok := c.m[host]
	c.mu.Unlock()
	if ok && now().Before(e.expires.Add(-renewBefore)) {
		return e.auth, nil
	}
	auth, expires, err := fetch()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cached{}
	}
	c.m[host] = cached{auth, expires}
	c.mu.Unlock()
	return auth, nil
}

// errorf names the provider and registry, never a credential, on one line
// (cloud SDKs write theirs over several).
func errorf(p Provider, host string, err error) error {
	return fmt.Errorf("failed to get %s registry credentials for %s: %s", p, host, strings.Join(strings.Fields(err.Error()), " "))
}
