package registryauth

import (
	"context"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// gcp authenticates to Artifact Registry and Container Registry with
// Application Default Credentials; the authenticator refreshes its token
// itself, so it is made once (a failure is tried again next time).
type gcp struct {
	mu   sync.Mutex
	auth authn.Authenticator
}

func newGoogle() *gcp { return &gcp{} }

func (g *gcp) handles(host string) bool {
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, ".pkg.dev")
}

func (g *gcp) resolve(ctx context.Context, host string) (authn.Authenticator, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.auth != nil {
		return g.auth, nil
	}
	auth, err := google.NewEnvAuthenticator(ctx)
	if err != nil {
		return nil, errorf(GCP, host, err)
	}
	if auth == authn.Anonymous {
		return nil, errorf(GCP, host, errNoCredentials)
	}
	// A token now, so that a credential that cannot give one fails here.
	if _, err := authn.Authorization(ctx, auth); err != nil {
		return nil, errorf(GCP, host, err)
	}
	g.auth = auth
	return auth, nil
}
