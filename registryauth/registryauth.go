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

	"github.com/go-logr/logr"
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

// Handles reports whether host is one of p's registries.
func (p Provider) Handles(host string) bool {
	switch p {
	case AWS:
		return (&ecrAuth{}).handles(host)
	case GCP:
		return (&gcp{}).handles(host)
	case Azure:
		return acrScope(host) != ""
	}
	return false
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
			kcs = append(kcs, newGoogle(o))
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
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain; without a deadline in
// ctx a lookup is bounded by resolveTimeout.
func (k *keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
	}
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
// because the cloud's credentials are missing. The error is logged (V(1),
// through the logger in the context), never a credential.
func OrAnonymous(kc authn.Keychain) authn.Keychain { return orAnonymous{kc} }

type orAnonymous struct{ kc authn.Keychain }

func (o orAnonymous) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return o.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: the caller's deadline
// bounds the lookup.
func (o orAnonymous) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	a, err := authn.Resolve(ctx, o.kc, r)
	if err != nil {
		logr.FromContextOrDiscard(ctx).V(1).Info("no cloud registry credentials: reading anonymously", "registry", r.RegistryStr(), "reason", err.Error())
		return authn.Anonymous, nil
	}
	return a, nil
}

// failureTTL is how long a failed lookup is remembered: a cluster outside
// a cloud does not ask the cloud's metadata service again for every image.
const failureTTL = time.Minute

// cache keeps a registry's credentials until shortly before they expire,
// and a failure for failureTTL.
type cache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	auth    authn.Authenticator
	err     error
	expires time.Time
}

// renewBefore is how long before expiry credentials are exchanged again.
const renewBefore = 5 * time.Minute

func (c *cache) get(host string, fetch func() (authn.Authenticator, time.Time, error)) (authn.Authenticator, error) {
	c.mu.Lock()
	e, ok := c.m[host]
	c.mu.Unlock()
	t := now(c.now)
	switch {
	case ok && e.err != nil && t.Before(e.expires):
		return nil, e.err
	case ok && e.err == nil && t.Before(e.expires.Add(-renewBefore)):
		return e.auth, nil
	}
	auth, expires, err := fetch()
	if err != nil {
		expires = t.Add(failureTTL)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cached{}
	}
	c.m[host] = cached{auth: auth, err: err, expires: expires}
	c.mu.Unlock()
	return auth, err
}

// errorf names the provider and registry, never a credential, on one line
// (cloud SDKs write theirs over several).
func errorf(p Provider, host string, err error) error {
	return fmt.Errorf("failed to get %s registry credentials for %s: %s", p, host, strings.Join(strings.Fields(err.Error()), " "))
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}
