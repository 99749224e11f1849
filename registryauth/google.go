package registryauth

import (
	"context"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
)

// gcp authenticates to Artifact Registry and Container Registry with
// Application Default Credentials. The authenticator refreshes its token
// itself, for as long as the process runs, so it is made once, with a
// context that is never cancelled (token refreshes reuse it).
type gcp struct{ cache cache }

func newGoogle(o options) *gcp { return &gcp{cache: cache{now: o.now}} }

func (g *gcp) handles(host string) bool {
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, ".pkg.dev")
}

// forever is the expiry of a self-refreshing authenticator.
const forever = 100 * 365 * 24 * time.Hour

func (g *gcp) resolve(ctx context.Context, host string) (authn.Authenticator, error) {
	// One authenticator for every Google registry.
	return g.cache.get("google", func() (authn.Authenticator, time.Time, error) {
		auth, err := google.NewEnvAuthenticator(context.Background())
		if err != nil {
			return nil, time.Time{}, errorf(GCP, host, err)
		}
		// A token now, within the caller's deadline, so that a credential
		// that cannot give one fails here.
		if _, err := authn.Authorization(ctx, auth); err != nil {
			return nil, time.Time{}, errorf(GCP, host, err)
		}
		return auth, now(g.cache.now).Add(forever), nil
	})
}
