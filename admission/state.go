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
)

// annotations are the provenance annotations of bundles, each value a
// comma-separated list in source order.
func annotations(bundles []Provenance, policy string) map[string]string {
	var versions, digests, commits []string
	for _, p := range bundles {
		v := ""
		if p.Version > 0 {
			v = strconv.FormatInt(p.Version, 10)
		}
		versions, digests, commits = append(versions, v), append(digests, p.Digest), append(commits, p.Commit)
	}
	return map[string]string{
		AnnotationBundleVersion: strings.Join(versions, ","),
		AnnotationBundleDigest:  strings.Join(digests, ","),
		AnnotationBundleCommit:  strings.Join(commits, ","),
		AnnotationPolicy:        policy,
	}
}

// Label is how a bundle is named in messages: "prod v7", or "none loaded".
func (p Provenance) Label() string {
	if p.Version == 0 && p.Digest == "" {
		return "none loaded"
	}
	s := fmt.Sprintf("v%d", p.Version)
	if p.Version == 0 {
		s = p.Digest
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
