package admission

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"ward.dev/ward/policies"
)

// Provenance names the bundle a policy set came from.
type Provenance struct {
	// Source is the policy source's name ("" for a single source).
	Source  string `json:"source,omitempty"`
	Env     string `json:"env,omitempty"`
	Version int64  `json:"version"`
	Digest  string `json:"digest"`
	Commit  string `json:"commit"`
	// State is the source's state when it is not plainly enforcing this
	// bundle: "pending" or "deny-all" (then the policies deny every image
	// and Version is 0), or "enforcing, expired". Empty means enforcing.
	State string `json:"state,omitempty"`
	// WorkingTree is the folder the policies were read from when they are
	// not a published bundle (ward check --policies): nothing signed or
	// verified them.
	WorkingTree string `json:"workingTree,omitempty"`
}

// enforcing reports whether the provenance is of a bundle being enforced
// (expired or not).
func (p Provenance) enforcing() bool {
	return p.State == "" || p.State == "enforcing" || p.State == "enforcing, expired"
}

// State is an immutable policy set with the provenance of the bundles it
// was compiled from: Bundles[i] is the bundle of the policies whose Origin
// is i.
type State struct {
	Set     *policies.Set
	Bundles []Provenance
}

// NewState is the state of one bundle's policies.
func NewState(set *policies.Set, p Provenance) *State {
	return &State{Set: set, Bundles: []Provenance{p}}
}

// Combine merges the states of several sources (see policies.Merge): a
// deny from any of them wins.
func Combine(states ...*State) *State {
	sets := make([]*policies.Set, len(states))
	var bundles []Provenance
	for i, st := range states {
		sets[i] = st.Set
		p := Provenance{}
		if len(st.Bundles) > 0 {
			p = st.Bundles[0]
		}
		bundles = append(bundles, p)
	}
	return &State{Set: policies.Merge(sets...), Bundles: bundles}
}

// bundle returns the provenance of origin i.
func (s *State) bundle(i int) Provenance {
	if i >= 0 && i < len(s.Bundles) {
		return s.Bundles[i]
	}
	return Provenance{}
}

// Policies holds the active State. The zero value enforces the empty set:
// every image is denied until a verified bundle is stored.
type Policies struct {
	p atomic.Pointer[State]
}

var emptyState = &State{Set: policies.Empty()}

// Load returns the active state; never nil.
func (p *Policies) Load() *State {
	if s := p.p.Load(); s != nil {
		return s
	}
	return emptyState
}

// Store makes s the active state for every request that starts after it.
func (p *Policies) Store(s *State) { p.p.Store(s) }

// Annotation keys of a decision's provenance (DESIGN §6). In an
// AdmissionResponse they are sent without the "ward.dev/" prefix: the API
// server prefixes audit annotations with the webhook's own name.
const (
	AnnotationBundleVersion = "ward.dev/bundle-version"
	AnnotationBundleDigest  = "ward.dev/bundle-digest"
	AnnotationBundleCommit  = "ward.dev/bundle-commit"
	AnnotationPolicy        = "ward.dev/policy"
	// AnnotationSourceState is each source's state (enforcing, "enforcing,
	// expired", pending, deny-all), separated by ";" since a state may
	// hold a comma.
	AnnotationSourceState = "ward.dev/source-state"
)

// annotations are the provenance annotations of bundles, each value a
// comma-separated list in source order.
func annotations(bundles []Provenance, policy string) map[string]string {
	var versions, digests, commits, states []string
	for _, p := range bundles {
		v := ""
		if p.Version > 0 {
			v = strconv.FormatInt(p.Version, 10)
		}
		state := p.State
		if state == "" {
			state = "enforcing"
		}
		versions, digests, commits, states = append(versions, v), append(digests, p.Digest), append(commits, p.Commit), append(states, state)
	}
	return map[string]string{
		AnnotationBundleVersion: strings.Join(versions, ","),
		AnnotationBundleDigest:  strings.Join(digests, ","),
		AnnotationBundleCommit:  strings.Join(commits, ","),
		AnnotationPolicy:        policy,
		AnnotationSourceState:   strings.Join(states, ";"),
	}
}

// Label is how a bundle is named in messages: "prod v7", "prod v7
// (enforcing, expired)", "prod pending", "prod deny-all"; "none loaded"
// before any source exists.
func (p Provenance) Label() string {
	var s string
	switch {
	case p.WorkingTree != "":
		return "working tree " + p.WorkingTree + " (unpublished)"
	case !p.enforcing():
		s = p.State
	case p.Version == 0 && p.Digest == "":
		return "none loaded"
	case p.Version == 0:
		s = p.Digest
	default:
		s = fmt.Sprintf("v%d", p.Version)
	}
	if p.State == "enforcing, expired" {
		s += " (" + p.State + ")"
	}
	if p.Env != "" {
		s = p.Env + " " + s
	}
	if p.Source != "" {
		s = p.Source + ": " + s
	}
	return s
}

// originLabel names the bundle of origin i when several are combined.
func (s *State) originLabel(i int) string {
	if len(s.Bundles) < 2 {
		return ""
	}
	return s.bundle(i).Label()
}
