package sigstoretuf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// DefaultRefresh is how often a remote's mirror is read again.
const DefaultRefresh = 10 * time.Minute

// Remotes keeps the trust material of TUF mirrors (policy-controller's
// TrustRoot "remote"), read again at most every Refresh and kept on disk,
// so that a mirror that cannot be reached, or a restart without the
// network, keeps the last verified copy until the metadata that vouched
// for it expires. It is safe for concurrent use; the zero value reads the
// mirror every time and keeps nothing on disk.
type Remotes struct {
	// Dir keeps the verified copies ("" for none).
	Dir string
	// Refresh is how long a copy is used before the mirror is read again.
	Refresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives failures to reach a mirror while a copy is still good.
	Log logr.Logger

	mu      sync.Mutex
	entries map[string]*remoteEntry
	// locks hold one mirror's reads: a slow mirror holds up only the
	// bundles that name it.
	locks map[string]*sync.Mutex
}

// Material is a remote's verified trust material.
type Material struct {
	Trusted *root.TrustedRoot
	// Version changes when the material does.
	Version string
	// Until is when the first of the metadata vouching for it expires:
	// past it, the material is no longer trusted.
	Until time.Time
}

type remoteEntry struct {
	trusted *root.TrustedRoot
	// Persisted fields.
	JSON    []byte    `json:"trustedRoot"`
	Fetched time.Time `json:"fetched"`
	Until   time.Time `json:"until"`
	Version string    `json:"version"`
}

// Get returns the trust material of a mirror, verified from rootJSON.
func (r *Remotes) Get(ctx context.Context, mirror string, rootJSON []byte, o Options) (*Material, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	key := remoteKey(mirror, rootJSON, o)
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
		r.entries = map[string]*remoteEntry{}
	}
	lock := r.locks[key]
	if lock == nil {
		lock = &sync.Mutex{}
		r.locks[key] = lock
	}
	r.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	r.mu.Lock()
	e := r.entries[key]
	r.mu.Unlock()
	if e == nil {
		e = r.load(key)
	}
	if e != nil && now().Sub(e.Fetched) < r.Refresh && now().Before(e.Until) {
		return e.material(), nil
	}
	local := ""
	if r.Dir != "" {
		local = filepath.Join(r.Dir, key)
	}
	m, err := fromMirror(ctx, mirror, rootJSON, o, now(), local)
	if err != nil {
		if e != nil && now().Before(e.Until) {
			r.Log.Info("the TUF mirror of a remote TrustRoot cannot be read; its last verified copy is used", "mirror", mirror, "until", e.Until, "error", err.Error())
			return e.material(), nil
		}
		if e != nil {
			return nil, fmt.Errorf("mirror %s: %w (the last verified copy expired at %s)", mirror, err, e.Until.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("mirror %s: %w", mirror, err)
	}
	sum := sha256.Sum256(m.json)
	e = &remoteEntry{trusted: m.trusted, JSON: m.json, Fetched: now(), Until: m.until, Version: hex.EncodeToString(sum[:8])}
	r.mu.Lock()
	r.entries[key] = e
	r.mu.Unlock()
	r.store(key, e)
	return e.material(), nil
}

func (e *remoteEntry) material() *Material {
	return &Material{Trusted: e.trusted, Version: e.Version, Until: e.Until}
}

func remoteKey(mirror string, rootJSON []byte, o Options) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", mirror, o.targets(), o.trustedRoot())
	h.Write(rootJSON)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (r *Remotes) path(key string) string { return filepath.Join(r.Dir, key+".json") }

// load reads a persisted copy; one that does not parse is ignored.
func (r *Remotes) load(key string) *remoteEntry {
	if r.Dir == "" {
		return nil
	}
	data, err := os.ReadFile(r.path(key))
	if err != nil {
		return nil
	}
	var e remoteEntry
	if json.Unmarshal(data, &e) != nil {
		return nil
	}
	if e.trusted, err = root.NewTrustedRootFromJSON(e.JSON); err != nil {
		return nil
	}
	r.mu.Lock()
	r.entries[key] = &e
	r.mu.Unlock()
	return &e
}

func (r *Remotes) store(key string, e *remoteEntry) {
	if r.Dir == "" {
		return
	}
	data, err := json.Marshal(e)
	if err == nil {
		err = os.MkdirAll(r.Dir, 0o700)
	}
	if err == nil {
		tmp := r.path(key) + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, r.path(key))
		}
	}
	if err != nil {
		r.Log.Error(err, "failed to keep the verified copy of a remote TrustRoot")
	}
}
