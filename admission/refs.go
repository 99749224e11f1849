package admission

import (
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
)

// maxParsedRefs bounds the parsed-reference cache: past it, the cache
// starts over.
const maxParsedRefs = 16384

// refCache remembers parsed image references. Parsing one costs a few
// microseconds (go-containerregistry validates every part), a cluster
// admits the same few hundred images over and over, and a parsed
// reference is an immutable value. Only valid references are kept.
// The zero value is ready to use.
type refCache struct {
	refs sync.Map // string → name.Reference
	n    atomic.Int64
}

// parse is name.ParseReference(img), from the cache when it can be.
func (c *refCache) parse(img string) (name.Reference, error) {
	if ref, ok := c.refs.Load(img); ok {
		return ref.(name.Reference), nil
	}
	ref, err := name.ParseReference(img)
	if err != nil {
		return nil, err
	}
	if c.n.Add(1) > maxParsedRefs {
		c.refs.Clear()
		c.n.Store(1)
	}
	c.refs.Store(img, ref)
	return ref, nil
}
