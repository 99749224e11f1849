package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"ward.dev/ward/admission"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/policies/sigstoretuf"
	"ward.dev/ward/sync/source"
)

// Defaults of a Spec.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 2 * time.Minute
)

// What to do when a source's metadata has expired (a freeze, or a
// repository whose timestamp nobody refreshed).
const (
	// OnExpiryKeep keeps enforcing the last verified bundle and says so in
	// the status (the default: the webhook never becomes the outage).
	OnExpiryKeep = "keep"
	// OnExpiryDenyAll denies every image until fresh metadata verifies.
	OnExpiryDenyAll = "deny-all"
)

// Spec is one policy source: where the TUF repository is, which
// environment to enforce, and the root it is pinned to.
type Spec struct {
	// Name identifies the source (a PolicySource's name).
	Name string
	// Env is the environment whose bundle is enforced.
	Env string
	// Root is the pinned root.json.
	Root []byte
	// Source fetches the repository.
	Source source.Source
	// Interval between syncs (default DefaultInterval); a little jitter is
	// added.
	Interval time.Duration
	// Timeout of one sync (default DefaultTimeout).
	Timeout time.Duration
	// OnExpiry is OnExpiryKeep (default) or OnExpiryDenyAll.
	OnExpiry string
	// Suspend stops syncing; the last applied bundle stays enforced.
	Suspend bool
	// Generation is the spec's generation (a PolicySource's
	// metadata.generation); status reports it as observed once a sync with
	// it has finished.
	Generation int64
	// Credentials fingerprints the credentials the source was resolved
	// with (Secrets' content): a change re-syncs with them, without a
	// new generation.
	Credentials string
	// ReconcileRequest is the newest reconcile request (Flux's
	// reconcile.fluxcd.io/requestedAt annotation): a new value syncs at
	// once.
	ReconcileRequest string
}

// Reasons a sync fails, as status conditions name them.
const (
	ReasonFetchFailed        = "FetchFailed"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonBundleInvalid      = "BundleInvalid"
	ReasonPoliciesInvalid    = "PoliciesInvalid"
	ReasonMetadataExpired    = "MetadataExpired"
	// ReasonInvalidSpec: the source's spec cannot be used.
	ReasonInvalidSpec = "InvalidSpec"
)

// Error is a failed sync: the reason (a Reason* constant) and the cause.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Applied is the bundle a source enforces.
type Applied struct {
	Env      string `json:"env"`
	Version  int64  `json:"version"`
	Digest   string `json:"digest"`
	Commit   string `json:"commit,omitempty"`
	Policies int    `json:"policies"`
	Revision string `json:"revision,omitempty"`
	// VerifiedAt is when the bundle's metadata last verified.
	VerifiedAt time.Time `json:"verifiedAt"`
	// TrustUntil is when the first of the metadata vouching for it
	// expires; past it, the bundle counts as expired even if the source
	// cannot be asked.
	TrustUntil time.Time `json:"trustUntil,omitzero"`
	// AppliedAt is when the bundle was swapped in.
	AppliedAt time.Time `json:"appliedAt"`
	// Expired is true while the metadata has expired and the bundle is
	// kept (OnExpiryKeep) or replaced by deny-all.
	Expired bool `json:"expired,omitempty"`
	// TrustRoots are the versions of the remote TrustRoots (TUF mirrors)
	// the policies were compiled with: new trust material from a mirror is
	// swapped in like a new bundle.
	TrustRoots string `json:"trustRoots,omitempty"`
	// ClusterReferences are what the policies read from the cluster
	// (Secrets), outside the bundle's signatures.
	ClusterReferences []string `json:"clusterReferences,omitempty"`
}

// Option configures a Syncer.
type Option func(*Syncer)

// WithClock sets the reference time for metadata expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Syncer) { s.now = now } }

// WithRemoteTrustRoots sets how remote TrustRoots (TUF mirrors) in
// bundles are read (default: every DefaultRefresh, verified copies kept in
// the state folder).
func WithRemoteTrustRoots(r *sigstoretuf.Remotes) Option { return func(s *Syncer) { s.remotes = r } }

// WithJitter sets the fraction of the interval added at random (default
// 0.1).
func WithJitter(f float64) Option { return func(s *Syncer) { s.jitter = f } }

// WithOnSwap calls f after each swap of a source's policies, from the
// goroutine that synced it.
func WithOnSwap(f func()) Option { return func(s *Syncer) { s.onSwap = f } }

// Syncer runs the sync loop of a set of sources.
type Syncer struct {
	stateDir string
	policies *admission.Policies
	now      func() time.Time
	metrics  *Metrics
	watch    func(string)
	jitter   float64
	remotes  *sigstoretuf.Remotes
	onSwap   func()

	mu      sync.Mutex
	sources map[string]*sourceState
	order   []string
	// stored are the contributions last combined into policies.
	stored []*admission.State
	// running holds one token per source name: one sync of a source at a
	// time, also across Remove and re-adding.
	running map[string]chan struct{}
	runCtx  context.Context
	loops   sync.WaitGroup
}

// New checks the specs and makes a Syncer that stores the combined policies
// of all sources in p. Until a source has a verified bundle, it denies every
// image (fail closed). Sources can be added, changed and removed later
// (Upsert, Block, Remove), also while Run runs.
func New(specs []Spec, stateDir string, p *admission.Policies, opts ...Option) (*Syncer, error) {
	s := &Syncer{stateDir: stateDir, policies: p, now: time.Now, jitter: 0.1,
		sources: map[string]*sourceState{}, running: map[string]chan struct{}{}}
	for _, o := range opts {
		o(s)
	}
	if s.remotes == nil {
		s.remotes = &sigstoretuf.Remotes{Refresh: sigstoretuf.DefaultRefresh, Now: s.now}
		if stateDir != "" {
			s.remotes.Dir = filepath.Join(stateDir, "trustroots")
		}
	}
	for _, sp := range specs {
		sp, err := checkSpec(sp)
		if err != nil {
			return nil, err
		}
		if _, dup := s.sources[sp.Name]; dup {
			return nil, fmt.Errorf("two policy sources are named %q", sp.Name)
		}
		s.addLocked(sp)
	}
	s.storeLocked()
	return s, nil
}

// checkSpec validates a spec and fills in defaults.
func checkSpec(sp Spec) (Spec, error) {
	if err := validateName(sp.Name); err != nil {
		return sp, err
	}
	if err := tuflayout.ValidateEnv(sp.Env); err != nil {
		return sp, fmt.Errorf("policy source %s: %w", sp.Name, err)
	}
	if _, err := tufclient.CheckRoot(sp.Root); err != nil {
		return sp, fmt.Errorf("policy source %s: pinned root: %w", sp.Name, err)
	}
	if sp.Source == nil {
		return sp, fmt.Errorf("policy source %s: no source (dir, git or oci)", sp.Name)
	}
	switch sp.OnExpiry {
	case "":
		sp.OnExpiry = OnExpiryKeep
	case OnExpiryKeep, OnExpiryDenyAll:
	default:
		return sp, fmt.Errorf("policy source %s: onExpiry is %q, want keep or deny-all", sp.Name, sp.OnExpiry)
	}
	if sp.Interval <= 0 {
		sp.Interval = DefaultInterval
	}
	if sp.Timeout <= 0 {
		sp.Timeout = DefaultTimeout
	}
	return sp, nil
}

func validateName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("policy source name %q: want a name without slashes that does not start with a dot", name)
	}
	return nil
}

// addLocked adds a source for a checked spec.
func (s *Syncer) addLocked(sp Spec) *sourceState {
	src := &sourceState{spec: sp, generation: sp.Generation, requested: sp.ReconcileRequest, trigger: make(chan struct{}, 1)}
	if sp.Suspend {
		src.synced = sp.Generation // nothing to reconcile while suspended
	}
	s.sources[sp.Name] = src
	s.order = append(s.order, sp.Name)
	if s.running[sp.Name] == nil {
		s.running[sp.Name] = make(chan struct{}, 1)
	}
	return src
}

// sameTrust reports whether two specs trust the same bundles: same
// repository, environment and root. Otherwise what was verified for one is
// nothing for the other.
func sameTrust(a, b Spec) bool {
	return a.Source.String() == b.Source.String() && a.Env == b.Env && bytes.Equal(a.Root, b.Root)
}

// Upsert adds a source or changes one. A change of repository,
// environment or root drops what was verified for the old one (its state
// folder too) and the source is pending, denying every image, until the
// new one verifies; a change of interval, timeout, onExpiry or suspend
// keeps it. A new generation restarts the source's loop, which syncs at
// once; so does a new reconcile request.
func (s *Syncer) Upsert(sp Spec) error {
	sp, err := checkSpec(sp)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if _, ok := s.sources[sp.Name]; !ok {
		s.addLocked(sp)
		s.storeLocked()
		s.startLocked(sp.Name)
		s.mu.Unlock()
		s.notify(sp.Name)
		return nil
	}
	s.mu.Unlock()
	restart, trigger := false, false
	s.change(sp.Name, func(src *sourceState) bool {
		old := src.spec
		wasBlocked := isBlocked(old)
		requested := sp.ReconcileRequest != "" && sp.ReconcileRequest != src.requested
		if sp.Generation == src.generation && !wasBlocked && src.blocked == "" && sameTrust(old, sp) && old.Credentials == sp.Credentials &&
			old.Interval == sp.Interval && old.Timeout == sp.Timeout && old.OnExpiry == sp.OnExpiry && old.Suspend == sp.Suspend {
			if requested {
				src.requested, trigger = sp.ReconcileRequest, true
				return true
			}
			return false // nothing changed: keep the loop as it is
		}
		src.spec, src.generation, src.blocked, src.requested = sp, sp.Generation, "", sp.ReconcileRequest
		if wasBlocked || !sameTrust(old, sp) {
			// What was verified for the old trust is nothing for the new:
			// a sync in flight is discarded when it ends, and the next
			// sync finds the state folder's trust changed and clears it.
			src.trust++
			src.verified, src.applied = nil, nil
			src.lastError, src.lastReason = "", ""
		}
		if sp.Suspend {
			src.synced = sp.Generation
		}
		restart = true
		return true
	})
	if trigger {
		s.Trigger(sp.Name)
	}
	if restart {
		s.mu.Lock()
		if src, ok := s.sources[sp.Name]; ok {
			s.stopLocked(src)
			s.startLocked(sp.Name)
		}
		s.mu.Unlock()
	}
	return nil
}

// Block records a spec that cannot be used, with why. A source that had a
// usable spec keeps it and what it enforces, and reports itself stalled;
// a new one takes part as deny-all instead of silently dropping out. Upsert
// with a usable spec ends the block.
func (s *Syncer) Block(name string, generation int64, env, reason string) {
	s.mu.Lock()
	if _, ok := s.sources[name]; !ok {
		src := s.addLocked(Spec{Name: name, Env: env, Source: blocked(reason)})
		src.blocked, src.generation = reason, generation
		s.storeLocked()
		s.mu.Unlock()
		s.notify(name)
		return
	}
	s.mu.Unlock()
	s.change(name, func(src *sourceState) bool {
		if src.blocked == reason && src.generation == generation {
			return false
		}
		src.blocked, src.generation = reason, generation
		if isBlocked(src.spec) {
			src.spec = Spec{Name: name, Env: env, Source: blocked(reason)}
		}
		return true
	})
}

// blocked is the source of a spec never usable: never synced.
type blocked string

func (b blocked) Open(context.Context) (source.Snapshot, error) { return nil, errors.New(string(b)) }
func (b blocked) String() string                                { return "invalid spec" }

func isBlocked(sp Spec) bool {
	_, ok := sp.Source.(blocked)
	return ok
}

// Remove stops and forgets a source; its policies stop taking part.
func (s *Syncer) Remove(name string) {
	s.mu.Lock()
	src, ok := s.sources[name]
	if !ok {
		s.mu.Unlock()
		return
	}
	s.stopLocked(src)
	src.trust++ // a sync in flight is discarded
	delete(s.sources, name)
	s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == name })
	s.storeLocked()
	s.mu.Unlock()
	s.notify(name)
}

// Watch makes the syncer call f with a source's name after every change
// of it (the Kubernetes status writer, which then reads Status); f must not
// block. Call it before Run.
func (s *Syncer) Watch(f func(name string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = f
}

// Sources lists the source names in order.
func (s *Syncer) Sources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Status returns one source's status; false if there is no such source.
func (s *Syncer) Status(name string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.sources[name]
	if !ok {
		return Status{}, false
	}
	return src.status(name), true
}

// Statuses returns every source's status, in order, taken at one instant.
func (s *Syncer) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, len(s.order))
	for i, name := range s.order {
		out[i] = s.sources[name].status(name)
	}
	return out
}

// Ready reports whether there is a source and every one is Ready (see
// AllReady).
func (s *Syncer) Ready() bool { return AllReady(s.Statuses()) }

// AllReady reports whether sts is not empty and every source is Ready:
// enforcing an unexpired bundle under its newest spec, its last sync
// succeeded (what `ward status` exits 0 on).
func AllReady(sts []Status) bool {
	return len(sts) > 0 && !slices.ContainsFunc(sts, func(st Status) bool { return !st.Ready })
}

// AllServing reports whether sts is not empty and every source has a
// verified bundle to go by (what /readyz answers): a replica is worth
// sending admission requests once no source is pending, even if a later
// sync failed.
func AllServing(sts []Status) bool {
	return len(sts) > 0 && !slices.ContainsFunc(sts, func(st Status) bool { return !st.Serving() })
}

// Trigger asks for an immediate sync of the named source; false if there is
// no such source.
func (s *Syncer) Trigger(name string) bool {
	s.mu.Lock()
	src, ok := s.sources[name]
	s.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case src.trigger <- struct{}{}:
	default: // one is already pending
	}
	return true
}

// expiryCheck is how often Run looks for metadata that has expired, also
// while a sync of the source is under way.
const expiryCheck = time.Second

// Run syncs every source at its interval (and when triggered) until ctx
// ends, each first serving its persisted bundle (see Restore). Expiry
// applies on time whatever a sync is doing.
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	if s.remotes.Log.GetSink() == nil {
		s.remotes.Log = logr.FromContextOrDiscard(ctx).WithName("trustroots")
	}
	for _, name := range s.order {
		s.startLocked(name)
	}
	s.mu.Unlock()
	t := time.NewTicker(expiryCheck)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			s.ApplyExpiry()
		}
	}
	s.mu.Lock()
	for _, src := range s.sources {
		s.stopLocked(src)
	}
	s.mu.Unlock()
	s.loops.Wait()
	return nil
}

// ApplyExpiry marks every source whose verified metadata has expired by
// the clock (TrustUntil passed) as expired: flagged with onExpiry keep,
// denying every image with deny-all. Run calls it every second.
func (s *Syncer) ApplyExpiry() {
	now := s.now()
	for _, name := range s.Sources() {
		s.change(name, func(src *sourceState) bool { return src.expireAt(now, false) })
	}
}

// expireAt marks the source's bundle expired when its trust has ended at
// now, or when a sync found the metadata expired (refused).
func (src *sourceState) expireAt(now time.Time, refused bool) bool {
	a := src.applied
	if a == nil || a.Expired {
		return false
	}
	if !refused && (a.TrustUntil.IsZero() || !now.After(a.TrustUntil)) {
		return false
	}
	expired := *a
	expired.Expired = true
	src.applied = &expired
	return true
}

// startLocked starts a source's loop when Run runs and the source is
// neither suspended nor blocked.
func (s *Syncer) startLocked(name string) {
	src := s.sources[name]
	if s.runCtx == nil || src == nil || src.spec.Suspend || isBlocked(src.spec) {
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	src.cancel = cancel
	sp, trigger := src.spec, src.trigger
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.loop(ctx, sp, trigger)
	}()
}

func (s *Syncer) stopLocked(src *sourceState) {
	if src.cancel != nil {
		src.cancel()
		src.cancel = nil
	}
}

func (s *Syncer) loop(ctx context.Context, sp Spec, trigger chan struct{}) {
	// Serve what was verified before a restart while the source is asked
	// (also for sources that appear later, as PolicySources do).
	s.restore(ctx, sp.Name)
	failures := 0
	for {
		wait := sp.Interval + time.Duration(rand.Float64()*s.jitter*float64(sp.Interval))
		if err := s.Sync(ctx, sp.Name); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			// Back off exponentially from 2 s, never past the interval.
			backoff := min(sp.Interval, 2*time.Second<<min(failures-1, 16))
			wait = backoff + time.Duration(rand.Float64()*s.jitter*float64(backoff))
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-trigger:
			t.Stop()
		}
	}
}
