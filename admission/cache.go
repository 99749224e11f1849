package admission

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"

	"ward.dev/ward/admission/imageverify"
)

// Cache defaults.
const (
	DefaultPositiveTTL = 5 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	DefaultDigestTTL   = 30 * time.Second
	DefaultCacheSize   = 10_000
)

// Cache remembers verification results by image digest and authority
// fingerprint, and tag→digest resolutions briefly. Identical concurrent
// lookups run once. Results of registry trouble are never cached: the
// next request asks again.
type Cache struct {
	positive, negative, digestTTL time.Duration
	max                           int
	now                           func() time.Time

	mu      sync.Mutex
	results map[string]cacheEntry
	digests map[string]digestEntry
	group   singleflight.Group
}

type cacheEntry struct {
	res     *imageverify.Result
	err     error
	expires time.Time
}

type digestEntry struct {
	digest  string
	expires time.Time
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithTTLs sets how long verified and refused results are kept (zero keeps
// nothing of that kind).
func WithTTLs(positive, negative time.Duration) CacheOption {
	return func(c *Cache) { c.positive, c.negative = positive, negative }
}

// WithDigestTTL sets how long a tag's digest is kept.
func WithDigestTTL(d time.Duration) CacheOption { return func(c *Cache) { c.digestTTL = d } }

// WithCacheSize bounds the number of entries of each kind.
func WithCacheSize(n int) CacheOption { return func(c *Cache) { c.max = n } }

// WithCacheClock sets the clock (tests).
func WithCacheClock(now func() time.Time) CacheOption { return func(c *Cache) { c.now = now } }

// NewCache makes a Cache.
func NewCache(opts ...CacheOption) *Cache {
	c := &Cache{positive: DefaultPositiveTTL, negative: DefaultNegativeTTL, digestTTL: DefaultDigestTTL, max: DefaultCacheSize, now: time.Now,
		results: map[string]cacheEntry{}, digests: map[string]digestEntry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// verify returns the cached result for (digest, fingerprint) or runs fn
// once for all concurrent callers.
func (c *Cache) verify(ctx context.Context, digest, fingerprint string, fn func(context.Context) (*imageverify.Result, error)) (*imageverify.Result, error) {
	key := digest + "|" + fingerprint
	if e, ok := c.lookup(key); ok {
		return e.res, e.err
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// A lookup that finished between our miss and this call stored
		// its result: use it.
		if e, ok := c.lookup(key); ok {
			return e.res, e.err
		}
		// Detached from the first caller's cancellation, bounded by its
		// deadline, so one client giving up does not fail the others.
		vctx := context.WithoutCancel(ctx)
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			vctx, cancel = context.WithDeadline(vctx, dl)
			defer cancel()
		}
		res, err := runSafely(vctx, fn)
		ttl := c.positive
		if err != nil {
			ttl = c.negative
			if errors.Is(err, errInternal) || errors.Is(err, imageverify.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				ttl = 0
			}
		}
		if ttl > 0 {
			c.mu.Lock()
			emptyIfFull(c.results, c.max)
			c.results[key] = cacheEntry{res: res, err: err, expires: c.now().Add(ttl)}
			c.mu.Unlock()
		}
		return res, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		res, ok := r.Val.(*imageverify.Result)
		if !ok || res == nil {
			return nil, errors.New("verification returned no result")
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errInternal is a verification that panicked: a bug, never cached.
var errInternal = errors.New("ward failed with an internal error (see its log)")

// runSafely runs fn, with a panic turned into errInternal: a panic in
// singleflight's DoChan goroutine cannot be recovered by its callers and
// would end the process.
func runSafely(ctx context.Context, fn func(context.Context) (*imageverify.Result, error)) (res *imageverify.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			logr.FromContextOrDiscard(ctx).Error(fmt.Errorf("%v", p), "panic while verifying", "stack", string(debug.Stack()))
			res, err = nil, errInternal
		}
	}()
	return fn(ctx)
}

// size is the number of entries of both kinds.
func (c *Cache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.results) + len(c.digests)
}

// lookup returns an unexpired result.
func (c *Cache) lookup(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.results[key]
	return e, ok && c.now().Before(e.expires)
}

// emptyIfFull empties a full map. Crude but bounded: a full cache is rare
// (10,000 distinct image×authority pairs within a TTL) and refills fast.
func emptyIfFull[V any](m map[string]V, max int) {
	if len(m) >= max {
		clear(m)
	}
}

// digest returns a cached tag→digest resolution.
func (c *Cache) digest(ref string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.digests[ref]
	if !ok || !c.now().Before(e.expires) {
		return "", false
	}
	return e.digest, true
}

func (c *Cache) storeDigest(ref, digest string) {
	if c.digestTTL <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	emptyIfFull(c.digests, c.max)
	c.digests[ref] = digestEntry{digest: digest, expires: c.now().Add(c.digestTTL)}
}
