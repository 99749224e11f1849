package imageverify

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// discoveryKey keys the referrers memo in a context.
type discoveryKey struct{}

// discovery remembers the referrers listed for each image during one
// decision, so that cosign's bundles and Notation's signatures of an image
// are found in one listing, whichever authorities ask.
type discovery struct {
	mu      sync.Mutex
	listing map[string]*referrersListing
}

type referrersListing struct {
	once  sync.Once
	index *v1.IndexManifest
	err   error
}

// WithDiscovery returns a context in which the referrers of an image are
// listed once for every authority verified with it. Give each decision
// (one image, one set of registry credentials) its own: a listing made
// with other credentials may differ.
func WithDiscovery(ctx context.Context) context.Context {
	return context.WithValue(ctx, discoveryKey{}, &discovery{listing: map[string]*referrersListing{}})
}

// referrers lists the referrers of img with list, once per img in ctx's
// discovery (every time without one).
func referrers(ctx context.Context, img name.Digest, list func() (*v1.IndexManifest, error)) (*v1.IndexManifest, error) {
	d, ok := ctx.Value(discoveryKey{}).(*discovery)
	if !ok {
		return list()
	}
	d.mu.Lock()
	l, ok := d.listing[img.String()]
	if !ok {
		l = &referrersListing{}
		d.listing[img.String()] = l
	}
	d.mu.Unlock()
	l.once.Do(func() { l.index, l.err = list() })
	return l.index, l.err
}
