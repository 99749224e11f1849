package syncer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"ward.dev/ward/admission"
	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/policies"
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
}

// Reasons a sync fails, as status conditions name them.
const (
	ReasonFetchFailed        = "FetchFailed"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonBundleInvalid      = "BundleInvalid"
	ReasonPoliciesInvalid    = "PoliciesInvalid"
	ReasonMetadataExpired    = "MetadataExpired"
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
}

// Status is a source's state.
type Status struct {
	Name   string `json:"name"`
	Env    string `json:"env"`
	Source string `json:"source"`
	// Ready is true while a verified bundle is enforced and the last sync
	// succeeded.
	Ready bool `json:"ready"`
	// Applied is the enforced bundle, nil before the first one.
	Applied *Applied `json:"applied,omitempty"`
	// LastAttempt is when the last sync ran.
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	// LastError is the last sync's failure, empty after a success.
	LastError  string `json:"lastError,omitempty"`
	LastReason string `json:"lastReason,omitempty"`
	Suspended  bool   `json:"suspended,omitempty"`
	Syncs      int64  `json:"syncs"`
	Failures   int64  `json:"failures"`
}

// Option configures a Syncer.
type Option func(*Syncer)

// WithClock sets the reference time for metadata expiry (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Syncer) { s.now = now } }

// WithMetrics records syncs in m.
func WithMetrics(m *Metrics) Option { return func(s *Syncer) { s.metrics = m } }

// WithStatusHook is called after every sync of a source with its status
// (the Kubernetes status writer).
func WithStatusHook(f func(Status)) Option { return func(s *Syncer) { s.hook = f } }

// WithJitter sets the fraction of the interval added at random (default
// 0.1).
func WithJitter(f float64) Option { return func(s *Syncer) { s.jitter = f } }

// Syncer runs the sync loop of a set of sources.
type Syncer struct {
	stateDir string
	policies *admission.Policies
	now      func() time.Time
	metrics  *Metrics
	hook     func(Status)
	jitter   float64

	mu       sync.Mutex
	specs    []Spec
	states   map[string]*admission.State
	status   map[string]*Status
	triggers map[string]chan struct{}
	running  map[string]*sync.Mutex
	// gens counts changes of trust per source: a sync started under an
	// older generation is discarded when it ends.
	gens    map[string]uint64
	runCtx  context.Context
	cancels map[string]context.CancelFunc
	loops   sync.WaitGroup
}

// New checks the specs and makes a Syncer that stores the combined policies
// of all sources in p. Until a source has a verified bundle, it denies every
// image (fail closed). Sources can be added, changed and removed later
// (Upsert, Remove), also while Run runs.
func New(specs []Spec, stateDir string, p *admission.Policies, opts ...Option) (*Syncer, error) {
	s := &Syncer{stateDir: stateDir, policies: p, now: time.Now, jitter: 0.1,
		states: map[string]*admission.State{}, status: map[string]*Status{}, triggers: map[string]chan struct{}{},
		running: map[string]*sync.Mutex{}, cancels: map[string]context.CancelFunc{}, gens: map[string]uint64{}}
	for _, o := range opts {
		o(s)
	}
	for _, sp := range specs {
		sp, err := checkSpec(sp)
		if err != nil {
			return nil, err
		}
		if _, dup := s.status[sp.Name]; dup {
			return nil, fmt.Errorf("two policy sources are named %q", sp.Name)
		}
		s.addLocked(sp)
	}
	s.swapLocked()
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

func (s *Syncer) addLocked(sp Spec) {
	s.specs = append(s.specs, sp)
	s.status[sp.Name] = &Status{Name: sp.Name, Env: sp.Env, Source: sp.Source.String(), Suspended: sp.Suspend}
	s.triggers[sp.Name] = make(chan struct{}, 1)
	if s.running[sp.Name] == nil {
		// Kept across Remove: a sync of the old source still in flight
		// finishes before one of the new starts.
		s.running[sp.Name] = &sync.Mutex{}
	}
}

// sameTrust reports whether two specs trust the same bundles: same
// repository, environment and root. Otherwise what was verified for one is
// nothing for the other.
func sameTrust(a, b Spec) bool {
	return a.Source.String() == b.Source.String() && a.Env == b.Env && bytes.Equal(a.Root, b.Root)
}

// Upsert adds a source or changes one. A change of repository,
// environment or root drops what was verified for the old one (its state
// folder too) and the source denies every image until the new one
// verifies; a change of interval, timeout, onExpiry or suspend keeps it.
// While Run runs, the source's loop restarts with the new spec.
func (s *Syncer) Upsert(sp Spec) error {
	sp, err := checkSpec(sp)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.specs, func(x Spec) bool { return x.Name == sp.Name })
	if i < 0 {
		s.addLocked(sp)
		s.swapLocked()
		s.startLocked(sp)
		return nil
	}
	old := s.specs[i]
	if old.Source != nil && sameTrust(old, sp) && old.Interval == sp.Interval && old.Timeout == sp.Timeout && old.OnExpiry == sp.OnExpiry && old.Suspend == sp.Suspend {
		return nil // nothing changed: keep the loop as it is
	}
	s.specs[i] = sp
	st := s.status[sp.Name]
	st.Env, st.Source, st.Suspended = sp.Env, sp.Source.String(), sp.Suspend
	if old.Source == nil || !sameTrust(old, sp) {
		// What was verified for the old trust is nothing for the new: a
		// sync in flight is discarded when it ends, and the next sync
		// finds the state folder's trust changed and clears it.
		s.gens[sp.Name]++
		delete(s.states, sp.Name)
		st.Applied, st.Ready, st.LastError, st.LastReason = nil, false, "", ""
		s.swapLocked()
	}
	s.stopLocked(sp.Name)
	s.startLocked(sp)
	return nil
}

// Block registers a source whose spec cannot be used, so that it takes part
// as deny-all instead of silently dropping out; a source with a working
// spec keeps it (and its bundle). Upsert with a usable spec replaces the
// block.
func (s *Syncer) Block(name, env, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.specs, func(x Spec) bool { return x.Name == name }) {
		return
	}
	s.addLocked(Spec{Name: name, Env: env, Source: blocked(reason)})
	s.status[name].LastError, s.status[name].LastReason = reason, "InvalidSpec"
	s.swapLocked()
}

// blocked is the source of a blocked spec: never synced.
type blocked string

func (b blocked) Open(context.Context) (source.Snapshot, error) { return nil, errors.New(string(b)) }
func (b blocked) String() string                                { return "invalid spec" }

// Remove stops and forgets a source; its policies stop taking part.
func (s *Syncer) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.specs, func(x Spec) bool { return x.Name == name })
	if i < 0 {
		return
	}
	s.stopLocked(name)
	s.gens[name]++
	s.specs = slices.Delete(s.specs, i, i+1)
	delete(s.states, name)
	delete(s.status, name)
	delete(s.triggers, name)
	s.swapLocked()
}

func validateName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("policy source name %q: want a name without slashes that does not start with a dot", name)
	}
	return nil
}

// spec returns a source's spec and generation.
func (s *Syncer) spec(name string) (Spec, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.specs {
		if sp.Name == name {
			return sp, s.gens[name], true
		}
	}
	return Spec{}, 0, false
}

func (s *Syncer) runMutex(name string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[name]
}

// Sources lists the source names in order.
func (s *Syncer) Sources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.specs))
	for i, sp := range s.specs {
		out[i] = sp.Name
	}
	return out
}

func (s *Syncer) sourceDir(name string) string { return filepath.Join(s.stateDir, "sources", name) }

// trustFile records what a source's state folder was verified under.
const trustFile = "trust.json"

// checkTrust clears a source's state folder when it was built under
// another root, repository or environment: what was verified for one is
// nothing for the other (a rotated-away root must not stay trusted).
func (s *Syncer) checkTrust(sp Spec) error {
	dir := s.sourceDir(sp.Name)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", sp.Source.String(), sp.Env)
	h.Write(sp.Root)
	want := hex.EncodeToString(h.Sum(nil))
	got, err := os.ReadFile(filepath.Join(dir, trustFile))
	if err == nil && string(got) == want {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, trustFile), []byte(want), 0o600)
}

// Statuses returns every source's status, in order.
func (s *Syncer) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.specs))
	for _, sp := range s.specs {
		st := *s.status[sp.Name]
		if st.Applied != nil {
			a := *st.Applied
			st.Applied = &a
		}
		out = append(out, st)
	}
	return out
}

// Ready reports whether there is a source and every source enforces a
// verified bundle.
func (s *Syncer) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.specs) == 0 {
		return false
	}
	for _, sp := range s.specs {
		if s.status[sp.Name].Applied == nil {
			return false
		}
	}
	return true
}

// Trigger asks for an immediate sync of the named source; false if there is
// no such source.
func (s *Syncer) Trigger(name string) bool {
	s.mu.Lock()
	ch, ok := s.triggers[name]
	s.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case ch <- struct{}{}:
	default: // one is already pending
	}
	return true
}

// Run syncs every source at its interval (and when triggered) until ctx
// ends, each first serving its persisted bundle (see Restore).
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, sp := range s.specs {
		s.startLocked(sp)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	for name := range s.cancels {
		s.stopLocked(name)
	}
	s.mu.Unlock()
	s.loops.Wait()
	return nil
}

// startLocked starts a source's loop when Run runs and the source is not
// suspended.
func (s *Syncer) startLocked(sp Spec) {
	if _, isBlocked := sp.Source.(blocked); s.runCtx == nil || sp.Suspend || isBlocked {
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	s.cancels[sp.Name] = cancel
	trigger := s.triggers[sp.Name]
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.loop(ctx, sp, trigger)
	}()
}

func (s *Syncer) stopLocked(name string) {
	if cancel, ok := s.cancels[name]; ok {
		cancel()
		delete(s.cancels, name)
	}
}

func (s *Syncer) loop(ctx context.Context, sp Spec, trigger chan struct{}) {
	// Serve what was verified before a restart while the source is asked
	// (also for sources that appear later, as PolicySources do).
	s.restore(ctx, sp)
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

// Sync runs one sync of the named source: fetch, verify, unpack, compile,
// swap. On failure nothing is swapped in and the error (an *Error) is also
// recorded in the status.
func (s *Syncer) Sync(ctx context.Context, name string) error {
	run := s.runMutex(name)
	if run == nil {
		return fmt.Errorf("no policy source %q", name)
	}
	run.Lock() // one sync of a source at a time
	defer run.Unlock()
	sp, gen, ok := s.spec(name) // read under the run lock: the spec it runs with
	if !ok {
		return fmt.Errorf("no policy source %q", name)
	}
	if _, isBlocked := sp.Source.(blocked); isBlocked {
		return &Error{Reason: "InvalidSpec", Err: errors.New(string(sp.Source.(blocked)))}
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("source", name, "env", sp.Env)
	ctx, cancel := context.WithTimeout(ctx, sp.Timeout)
	defer cancel()
	start := s.now()
	st, applied, err := s.fetchAndVerify(ctx, sp)
	if err != nil {
		var se *Error
		if !errors.As(err, &se) {
			se = &Error{Reason: ReasonFetchFailed, Err: err}
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return se // stopped, not failed
		}
		s.failed(sp, gen, se, start, log)
		return se
	}
	s.apply(sp, gen, st, applied, start, log)
	return nil
}

// fetchAndVerify runs the checklist; any failure leaves everything as it
// was.
func (s *Syncer) fetchAndVerify(ctx context.Context, sp Spec) (*admission.State, *Applied, error) {
	snap, err := sp.Source.Open(ctx)
	if err != nil {
		return nil, nil, &Error{Reason: ReasonFetchFailed, Err: fmt.Errorf("failed to fetch %s: %w", sp.Source, err)}
	}
	return s.verify(ctx, sp, snap, s.now, snap.Revision())
}

// verify reads env's bundle through the pinned root from f, unpacks and
// compiles it.
func (s *Syncer) verify(ctx context.Context, sp Spec, f tufclient.Fetcher, now func() time.Time, revision string) (*admission.State, *Applied, error) {
	dir := s.sourceDir(sp.Name)
	if err := s.checkTrust(sp); err != nil {
		return nil, nil, err
	}
	client, err := tufclient.New(sp.Root, f, dir, tufclient.WithClock(now))
	if err != nil {
		return nil, nil, &Error{Reason: ReasonVerificationFailed, Err: err}
	}
	target, err := client.Update(ctx, sp.Env)
	if err != nil {
		reason := ReasonVerificationFailed
		switch {
		case errors.Is(err, tufclient.ErrExpired):
			reason = ReasonMetadataExpired
		case errors.Is(err, tufclient.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			reason = ReasonFetchFailed
		}
		return nil, nil, &Error{Reason: reason, Err: err}
	}
	b, err := bundle.Open(target)
	if err != nil {
		return nil, nil, &Error{Reason: ReasonBundleInvalid, Err: err}
	}
	set, err := policies.Compile(b.Policies())
	if err != nil {
		return nil, nil, &Error{Reason: ReasonPoliciesInvalid, Err: fmt.Errorf("failed to compile the policies of %s v%d: %w", b.Env(), b.Version(), err)}
	}
	a := &Applied{Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit(), Policies: set.Len(), Revision: revision, VerifiedAt: now(), TrustUntil: b.TrustUntil()}
	prov := admission.Provenance{Source: sp.Name, Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit()}
	return admission.NewState(set, prov), a, nil
}

func (s *Syncer) apply(sp Spec, gen uint64, st *admission.State, a *Applied, start time.Time, log logr.Logger) {
	s.mu.Lock()
	status, ok := s.status[sp.Name]
	if !ok || s.gens[sp.Name] != gen { // removed or re-trusted meanwhile
		s.mu.Unlock()
		return
	}
	prev := status.Applied
	swapped := prev == nil || prev.Digest != a.Digest || prev.Version != a.Version || prev.Expired
	if swapped {
		a.AppliedAt = s.now()
		s.states[sp.Name] = st
		s.swapLocked()
	} else {
		a.AppliedAt = prev.AppliedAt
	}
	status.Applied, status.LastAttempt, status.LastError, status.LastReason, status.Ready = a, start, "", "", true
	status.Syncs++
	snapshot := *status
	s.mu.Unlock()
	if err := s.persist(sp.Name, a); err != nil {
		log.Error(err, "failed to persist the applied bundle")
	}
	if swapped {
		log.Info("policies swapped in", "version", a.Version, "digest", a.Digest, "commit", a.Commit, "policies", a.Policies)
	}
	s.metrics.sync(sp.Name, "", s.now().Sub(start), swapped, a)
	if s.hook != nil {
		s.hook(snapshot)
	}
}

func (s *Syncer) failed(sp Spec, gen uint64, se *Error, start time.Time, log logr.Logger) {
	s.mu.Lock()
	status, ok := s.status[sp.Name]
	if !ok || s.gens[sp.Name] != gen { // removed or re-trusted meanwhile
		s.mu.Unlock()
		return
	}
	status.LastAttempt, status.LastError, status.LastReason, status.Ready = start, se.Error(), se.Reason, false
	status.Syncs++
	status.Failures++
	// Expired metadata, or a source that cannot be asked past the time the
	// metadata it gave expires: either way the bundle is not known to be
	// current any more.
	pastTrust := status.Applied != nil && !status.Applied.TrustUntil.IsZero() && s.now().After(status.Applied.TrustUntil)
	if (se.Reason == ReasonMetadataExpired || pastTrust) && status.Applied != nil {
		status.Applied.Expired = true
		if sp.OnExpiry == OnExpiryDenyAll {
			s.states[sp.Name] = denyAll(sp, "the metadata of "+sp.Env+" has expired (onExpiry: deny-all)")
			s.swapLocked()
		}
	}
	snapshot := *status
	s.mu.Unlock()
	log.Info("sync refused; the last verified policies stay enforced", "reason", se.Reason, "error", se.Error())
	s.metrics.sync(sp.Name, se.Reason, s.now().Sub(start), false, nil)
	if s.hook != nil {
		s.hook(snapshot)
	}
}

// swapLocked stores the combination of every source's state; a source
// with none yet denies every image.
func (s *Syncer) swapLocked() {
	states := make([]*admission.State, 0, len(s.specs))
	for _, sp := range s.specs {
		st, ok := s.states[sp.Name]
		if !ok {
			st = denyAll(sp, "no verified bundle of "+sp.Env+" yet")
		}
		states = append(states, st)
	}
	s.policies.Store(admission.Combine(states...))
}

// denyAll is a state that denies every image with reason.
func denyAll(sp Spec, reason string) *admission.State {
	return admission.NewState(denyAllSet(reason), admission.Provenance{Source: sp.Name, Env: sp.Env})
}

// denyAllSets holds the compiled deny-all sets by reason: every swap
// combines one per pending source, and compiling builds CEL environments.
var denyAllSets sync.Map

func denyAllSet(reason string) *policies.Set {
	if set, ok := denyAllSets.Load(reason); ok {
		return set.(*policies.Set)
	}
	doc := fmt.Sprintf(`apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata: {name: ward-deny-all}
spec:
  images: [{glob: "**"}]
  authorities: [{name: %q, static: {action: fail}}]
`, reason)
	set, err := policies.Compile([]bundle.Document{{Path: "ward/deny-all.yaml", Data: []byte(doc)}})
	if err != nil {
		panic(fmt.Sprintf("the built-in deny-all policy does not compile: %v", err)) // a programming error
	}
	denyAllSets.Store(reason, set)
	return set
}

// persist records the applied bundle, so that a restart can serve it.
func (s *Syncer) persist(name string, a *Applied) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.sourceDir(name), "applied.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Restore serves each source's persisted bundle, verified again from the
// persisted metadata through the pinned root. Metadata that has expired
// since is verified at the time it last verified and, with OnExpiryKeep,
// served and marked expired; with OnExpiryDenyAll the source denies all.
func (s *Syncer) Restore(ctx context.Context) {
	s.mu.Lock()
	specs := slices.Clone(s.specs)
	s.mu.Unlock()
	for _, sp := range specs {
		s.restore(ctx, sp)
	}
}

// restore serves one source's persisted bundle (see Restore).
func (s *Syncer) restore(ctx context.Context, sp Spec) {
	if _, isBlocked := sp.Source.(blocked); isBlocked {
		return
	}
	run := s.runMutex(sp.Name)
	if run == nil {
		return
	}
	run.Lock()
	defer run.Unlock()
	_, gen, ok := s.spec(sp.Name)
	if !ok {
		return
	}
	{
		log := logr.FromContextOrDiscard(ctx).WithValues("source", sp.Name, "env", sp.Env)
		data, err := os.ReadFile(filepath.Join(s.sourceDir(sp.Name), "applied.json"))
		if err != nil {
			return
		}
		var prev Applied
		if err := json.Unmarshal(data, &prev); err != nil {
			log.Error(err, "ignoring a corrupt applied.json")
			return
		}
		f := stateFetcher{dir: s.sourceDir(sp.Name)}
		st, a, err := s.verify(ctx, sp, f, s.now, prev.Revision)
		expired := false
		if err != nil && errors.Is(err, tufclient.ErrExpired) {
			expired = true
			if sp.OnExpiry == OnExpiryDenyAll {
				st, a, err = denyAll(sp, "the persisted metadata of "+sp.Env+" has expired (onExpiry: deny-all)"), &prev, nil
			} else {
				at := prev.VerifiedAt
				st, a, err = s.verify(ctx, sp, f, func() time.Time { return at }, prev.Revision)
			}
		}
		if err == nil && !expired && a.Digest != prev.Digest {
			err = fmt.Errorf("the persisted metadata names %s, the applied bundle was %s", a.Digest, prev.Digest)
		}
		if err != nil {
			log.Error(err, "the persisted bundle does not verify; waiting for the source")
			return
		}
		a.Expired = expired
		a.AppliedAt = s.now()
		if expired {
			a.VerifiedAt = prev.VerifiedAt
		}
		s.mu.Lock()
		if status, ok := s.status[sp.Name]; ok && status.Applied == nil && s.gens[sp.Name] == gen {
			s.states[sp.Name] = st
			status.Applied = a
			s.swapLocked()
		}
		s.mu.Unlock()
		log.Info("serving the persisted bundle", "version", a.Version, "digest", a.Digest, "expired", expired)
	}
}

// stateFetcher serves a source's own persisted metadata as the repository,
// so that the TUF client verifies it again without the network. It has no
// newer roots, and targets come from the client's cache.
type stateFetcher struct{ dir string }

func (f stateFetcher) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	dir, file := filepath.Split(filepath.FromSlash(path))
	if filepath.Clean(dir) != tuflayout.MetadataDir {
		return nil, tufclient.ErrNotFound
	}
	name := file
	if v, rest, ok := strings.Cut(file, "."); ok && isDigits(v) {
		if rest == "root.json" {
			return nil, tufclient.ErrNotFound
		}
		name = rest
	}
	return tufclient.DirFetcher{Dir: f.dir}.Fetch(ctx, tuflayout.MetadataDir+"/"+name, maxLength)
}

func isDigits(s string) bool {
	return s != "" && !slices.ContainsFunc([]rune(s), func(r rune) bool { return r < '0' || r > '9' })
}
