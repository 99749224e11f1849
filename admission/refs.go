package admission

import (
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/policies"
)

// maxParsedRefs bounds the parsed-reference cache: past it, the cache
// starts over. References longer than maxCachedRef bytes are parsed each
// time, so the cache's size is bounded too.
const (
	maxParsedRefs = 16384
	maxCachedRef  = 512
)

// refCache remembers parsed image references. Parsing one costs a few
// microseconds (go-containerregistry validates every part, and the
// normalized names are built by concatenation), a cluster admits the
// same few hundred images over and over, and a parsed reference is an
// immutable value. Only valid references are kept. The zero value is
// ready to use.
type refCache struct {
	refs sync.Map // string → *parsedRef
	n    atomic.Int64
}

// parsedRef is a reference and the Image policies match it as.
type parsedRef struct {
	ref   name.Reference
	image policies.Image
}

// parse is name.ParseReference(img) with its Image, from the cache when it
// can be.
func (c *refCache) parse(img string) (*parsedRef, error) {
	if p, ok := c.refs.Load(img); ok {
		return p.(*parsedRef), nil
	}
	ref, err := name.ParseReference(img)
	if err != nil {
		return nil, err
	}
	p := &parsedRef{ref: ref, image: policies.ImageOf(ref, img)}
	if len(img) > maxCachedRef {
		return p, nil
	}
	if c.n.Add(1) > maxParsedRefs {
		c.refs.Clear()
		c.n.Store(1)
	}
	c.refs.Store(img, p)
	return p, nil
}
