package syncer

import (
	"fmt"
	"sync"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/bundle"
	"ward.dev/ward/policies"
)

// The states a source is in (DESIGN §10). /status, PolicySource
// conditions, /readyz, metrics, logs and deny messages all use these
// names; whether the last sync failed is told apart (Status.LastError).
const (
	// StatePending: no verified bundle yet; every image is denied.
	StatePending = "pending"
	// StateEnforcing: a verified bundle is enforced.
	StateEnforcing = "enforcing"
	// StateExpired: the metadata that vouched for the bundle has expired
	// and onExpiry is keep: the bundle is still enforced, and flagged.
	StateExpired = "enforcing, expired"
	// StateDenyAll: every image is denied: the metadata expired with
	// onExpiry deny-all, or the source's spec cannot be used at all.
	StateDenyAll = "deny-all"
)

// Status is what one source reports: a projection of its state taken at
// one instant, so that its fields never contradict each other.
type Status struct {
	Name   string `json:"name"`
	Env    string `json:"env"`
	Source string `json:"source"`
	// State is one of the State* names.
	State string `json:"state"`
	// Message says in words what State means for admission right now.
	Message string `json:"message"`
	// Ready is true while the source enforces an unexpired verified
	// bundle under its newest spec and its last sync succeeded.
	Ready bool `json:"ready"`
	// Generation is the newest spec generation seen (a PolicySource's
	// metadata.generation; 0 in a config file).
	Generation int64 `json:"generation,omitempty"`
	// ObservedGeneration is the generation the rest of the status is
	// about: the spec the last finished sync ran with, or the newest spec
	// when it cannot be used.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Reconciling is true from when a new generation is seen until a sync
	// with it has finished.
	Reconciling bool `json:"reconciling,omitempty"`
	// Stalled says why the newest spec cannot be used; the source keeps
	// the last usable spec (or denies every image if it never had one).
	Stalled string `json:"stalled,omitempty"`
	// Applied is the last verified bundle, nil while pending. While the
	// state is deny-all it is not enforced.
	Applied *Applied `json:"applied,omitempty"`
	// LastAttempt is when the last sync ran.
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	// LastError is the last sync's failure, empty after a success.
	LastError  string `json:"lastError,omitempty"`
	LastReason string `json:"lastReason,omitempty"`
	Suspended  bool   `json:"suspended,omitempty"`
	Syncs      int64  `json:"syncs"`
	Failures   int64  `json:"failures"`
	// LastHandledReconcileAt is the reconcile request (the
	// reconcile.fluxcd.io/requestedAt annotation) the last sync answered.
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Serving reports whether the source has a verified bundle to go by:
// enforced, enforced and expired, or denied all by onExpiry. Only pending
// sources and specs never usable are not.
func (st Status) Serving() bool { return st.Applied != nil }

// sourceState owns everything about one policy source. Its fields change only
// through Syncer.change, under Syncer.mu; every report is a projection of
// it (status).
type sourceState struct {
	// spec is what syncs run with: the last usable spec.
	spec Spec
	// trust is bumped whenever what was verified stops counting (another
	// root, repository or environment, or removal): a sync started under
	// an older one is discarded when it ends.
	trust uint64
	// verified is the compiled bundle, nil while pending.
	verified *admission.State
	// parsed holds the policy documents the last compile decoded, for the
	// next (policies.WithParseCache).
	parsed  policies.ParseCache
	applied *Applied
	// blocked says why the newest spec cannot be used.
	blocked string
	// generation is the newest spec generation seen; synced the one the
	// last finished sync ran with.
	generation, synced int64
	// requested is the newest reconcile request, handled the one the last
	// finished sync answered.
	requested, handled string

	lastAttempt     time.Time
	lastError       string
	lastReason      string
	syncs, failures int64
	trigger         chan struct{}
	cancel          func()
	// contributed memoizes contribution (derived, never reported): an
	// unchanged source gives the same pointer, so storeLocked can tell
	// that nothing needs combining again.
	contributed memo
}

// memo is a contribution and what it was made from.
type memo struct {
	key      string
	verified *admission.State
	state    *admission.State
}

// state names the source's state and says what it means.
func (src *sourceState) state() (string, string) {
	env := src.spec.Env
	switch {
	case src.applied == nil && src.blocked != "" && isBlocked(src.spec):
		return StateDenyAll, fmt.Sprintf("the spec cannot be used (%s): every image is denied", src.blocked)
	case src.applied == nil:
		return StatePending, fmt.Sprintf("no verified bundle of %s yet: every image is denied", env)
	case src.applied.Expired && src.spec.OnExpiry == OnExpiryDenyAll:
		return StateDenyAll, fmt.Sprintf("the metadata of %s v%d has expired (onExpiry: deny-all): every image is denied", env, src.applied.Version)
	case src.applied.Expired:
		return StateExpired, fmt.Sprintf("the metadata of %s v%d has expired; its policies are still enforced (onExpiry: keep)", env, src.applied.Version)
	default:
		return StateEnforcing, fmt.Sprintf("enforcing %s v%d", env, src.applied.Version)
	}
}

// status projects the source.
func (src *sourceState) status(name string) Status {
	state, msg := src.state()
	st := Status{
		Name: name, Env: src.spec.Env, Source: src.spec.Source.String(),
		State: state, Message: msg,
		Generation: src.generation, ObservedGeneration: src.synced,
		Stalled:     src.blocked,
		LastAttempt: src.lastAttempt, LastError: src.lastError, LastReason: src.lastReason,
		Suspended: src.spec.Suspend, Syncs: src.syncs, Failures: src.failures,
		LastHandledReconcileAt: src.handled,
	}
	if src.blocked != "" {
		st.ObservedGeneration = src.generation
	}
	st.Reconciling = src.blocked == "" && src.synced < src.generation
	if src.applied != nil {
		a := *src.applied
		st.Applied = &a
	}
	st.Ready = state == StateEnforcing && st.LastError == "" && st.Stalled == "" && !st.Reconciling
	return st
}

// contribution is the policy state the source adds to the combined set:
// its verified bundle while it enforces one, else a set that denies every
// image and says why. The provenance names the state, so that decisions,
// deny messages and audit annotations say it too.
func (src *sourceState) contribution(name string) *admission.State {
	state, msg := src.state()
	key := state + "\x00" + msg
	if m := src.contributed; m.state != nil && m.key == key && m.verified == src.verified {
		return m.state
	}
	var st *admission.State
	switch state {
	case StateEnforcing, StateExpired:
		p := src.verified.Bundles[0]
		p.State = state
		st = &admission.State{Set: src.verified.Set, Bundles: []admission.Provenance{p}}
	default:
		st = admission.NewState(denyAllSet(msg), admission.Provenance{Source: name, Env: src.spec.Env, State: state})
	}
	src.contributed = memo{key: key, verified: src.verified, state: st}
	return st
}

// change is the one way a source changes: f runs on the named source under
// the lock (false from f: nothing changed), the combined policies are
// stored again when a source's contribution changed, and the watcher is
// told; a source that no longer exists is left alone.
func (s *Syncer) change(name string, f func(src *sourceState) bool) {
	s.mu.Lock()
	src, ok := s.sources[name]
	if !ok {
		s.mu.Unlock()
		return
	}
	changed := f(src)
	if changed {
		s.storeLocked()
	}
	s.mu.Unlock()
	if changed {
		s.notify(name)
	}
}

// notify tells the watcher that a source changed.
func (s *Syncer) notify(name string) {
	s.mu.Lock()
	watch := s.watch
	s.mu.Unlock()
	if watch != nil {
		watch(name)
	}
}

// storeLocked stores the combination of every source's contribution,
// unless none of them changed.
func (s *Syncer) storeLocked() {
	states := make([]*admission.State, len(s.order))
	same := len(states) == len(s.stored)
	for i, name := range s.order {
		states[i] = s.sources[name].contribution(name)
		same = same && states[i] == s.stored[i]
	}
	if same {
		return
	}
	s.stored = states
	s.policies.Store(admission.Combine(states...))
}

// denyAllSets holds the compiled deny-all sets by reason: compiling builds
// CEL environments, and a reason repeats.
var denyAllSets sync.Map

// denyAllSet is a policy set that denies every image, its authority named
// by reason (the deny message names it).
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
