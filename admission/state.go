package admission

import (
	"strconv"
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

// State is an immutable policy set with its provenance.
type State struct {
	Set        *policies.Set
	Provenance Provenance
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

// Loaded reports whether a verified bundle has been stored.
func (p *Policies) Loaded() bool { return p.p.Load() != nil }

// Annotation keys of a decision's provenance (DESIGN §6). In an
// AdmissionResponse they are sent without the "ward.dev/" prefix: the API
// server prefixes audit annotations with the webhook's own name.
const (
	AnnotationBundleVersion = "ward.dev/bundle-version"
	AnnotationBundleDigest  = "ward.dev/bundle-digest"
	AnnotationBundleCommit  = "ward.dev/bundle-commit"
	AnnotationPolicy        = "ward.dev/policy"
)

func (p Provenance) annotations(policy string) map[string]string {
	v := ""
	if p.Version > 0 {
		v = strconv.FormatInt(p.Version, 10)
	}
	return map[string]string{
		AnnotationBundleVersion: v,
		AnnotationBundleDigest:  p.Digest,
		AnnotationBundleCommit:  p.Commit,
		AnnotationPolicy:        policy,
	}
}
