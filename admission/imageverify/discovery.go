package imageverify

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// discoveryKey keys a *Discovery in a context.
type discoveryKey struct{}

// Discovery remembers the referrers listed for each image, so that
// cosign's bundles and Notation's signatures of an image are found in one
// listing, whichever authorities ask. Give each admission request (one
// set of registry credentials) its own: a listing made with other
// credentials may differ. The zero value is ready to use.
type Discovery struct {
	mu      sync.Mutex
	listing map[string]*referrersListing
}

type referrersListing struct {
	once  sync.Once
	index *v1.IndexManifest
	err   error
}

// WithDiscovery returns a context in which verifications list each
// image's referrers once, through d.
func WithDiscovery(ctx context.Context, d *Discovery) context.Context {
	return context.WithValue(ctx, discoveryKey{}, d)
}

// referrers lists the referrers of img with list, once per img in ctx's
// Discovery (every time without one). Every list function must list all
// of img's referrers (no artifact type filter) with the Discovery's
// credentials: the listing is shared by image alone.
func referrers(ctx context.Context, img name.Digest, list func() (*v1.IndexManifest, error)) (*v1.IndexManifest, error) {
	d, ok := ctx.Value(discoveryKey{}).(*Discovery)
	if !ok || d == nil {
		return list()
	}
	d.mu.Lock()
	l, ok := d.listing[img.String()]
	if !ok {
		if d.listing == nil {
			d.listing = map[string]*referrersListing{}
		}
		l = &referrersListing{}
		d.listing[img.String()] = l
	}
	d.mu.Unlock()
	l.once.Do(func() { l.index, l.err = list() })
	return l.index, l.err
}
