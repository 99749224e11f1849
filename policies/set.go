package policies

import (
	"crypto"
	"crypto/x509"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"ward.dev/ward/policies/policyeval"
)

// Set is an immutable, compiled set of policies. It is safe for concurrent
// use; the webhook swaps whole Sets, never edits one.
type Set struct {
	// remoteVersions are "name=version" of the remote TrustRoots read
	// when the set was compiled.
	remoteVersions []string
	// remoteUntil is when the first of them stops being vouched for.
	remoteUntil time.Time
	images      []*ImagePolicy
	validations []*ValidationPolicy
	index       *patternIndex
	settings    Settings
	// selectors is true when a policy selects namespaces by label; set
	// once by seal, so that requests need not scan the policies.
	selectors bool
}

// seal computes what a request would otherwise derive from the policies.
func (s *Set) seal() *Set {
	for _, p := range s.images {
		s.selectors = s.selectors || p.match.selector != nil
	}
	for _, p := range s.validations {
		s.selectors = s.selectors || p.match.selector != nil
	}
	return s
}

// Empty is a Set with no policies and the default settings: every image is
// denied, which is what a controller enforces before its first bundle.
func Empty() *Set {
	return &Set{index: newPatternIndex(), settings: defaultSettings()}
}

// ImagePolicy is a compiled ImagePolicy.
type ImagePolicy struct {
	Name string
	// Kind is ImagePolicy or ClusterImagePolicy (policy-controller's, with
	// its glob meaning).
	Kind string
	// File is the path of the document in the bundle.
	File string
	Mode Mode
	// Globs are the normalised image globs.
	Globs       []string
	Authorities []*CompiledAuthority
	// Threshold is how many distinct authorities must verify (at least 1).
	Threshold int
	// Origin is the index of the source set this policy came from (see
	// Merge); 0 for a set that was not merged.
	Origin int
	match  matcher
	// Check is a ClusterImagePolicy's spec.policy; nil for none. With a
	// check, every authority is evaluated (the check sees them all).
	Check *PolicyCheck
	// refs are a ClusterImagePolicy's compiled globs (Globs as written).
	refs []refGlob
}

// refGlob is a compiled ClusterImagePolicy glob: the glob with Docker
// Hub's shorthands expanded, and its expression.
type refGlob struct {
	glob string
	re   *regexp.Regexp
}

// CompiledAuthority is a compiled authority. Exactly one of Key, Keyless,
// Notation and Static is set.
type CompiledAuthority struct {
	Name     string
	Key      *PublicKey
	Keyless  *Keyless
	Notation *Notation
	// Static is "pass" or "fail" for a static authority.
	Static string
	// StaticMessage says why a static fail fails.
	StaticMessage string
	// TLogKeys, when set, require a transparency-log entry whose signed
	// entry timestamp verifies with one of these Rekor keys.
	TLogKeys     []crypto.PublicKey
	Attestations []CompiledAttestation
	// Fingerprint identifies everything that decides whether this
	// authority accepts an image: key or CA and identities, log keys,
	// attestation conditions. Verification results are cached by image
	// digest and Fingerprint, so they survive a policy swap that leaves
	// the authority unchanged.
	Fingerprint string
	// Source is where signatures are kept when not beside the image; nil
	// for beside it.
	Source *CompiledSource
	// TSA, when set, verifies signed timestamps (RFC 3161).
	TSA      *TSA
	signerID string
}

// TSA is the certificates of trusted timestamp authorities.
type TSA struct {
	Roots, Intermediates, Leaves []*x509.Certificate
}

// CompiledSource is a SignatureSource, checked.
type CompiledSource struct {
	// Repository holds the signatures ("" for the image's own).
	Repository string
	TagPrefix  string
	// PullSecrets are Secrets in the workload's namespace to read them
	// with (none: the workload's own credentials).
	PullSecrets []string
}

// PublicKey is a static verification key: PEM-decoded or a KMS URI that is
// resolved when the verifier is built.
type PublicKey struct {
	Public crypto.PublicKey
	KMS    string
	// SecretRef names the Secret (in the controller's namespace) the key
	// is read from at admission time; see CompiledAuthority.WithSecret.
	SecretRef string
	Hash      crypto.Hash
	id        string
}

// Keyless trusts Fulcio certificates for given identities.
type Keyless struct {
	// CASecretRef names the Secret the CA certificates are read from at
	// admission time (Roots and Intermediates are then empty until
	// WithSecret fills them).
	CASecretRef     string
	Roots           []*x509.Certificate
	Intermediates   []*x509.Certificate
	Identities      []CompiledIdentity
	SCTKeys         []crypto.PublicKey
	IgnoreSCTUnsafe bool
	id              string
}

// CompiledIdentity is an issuer and subject, each exact or a regexp.
type CompiledIdentity struct {
	Issuer, Subject             string
	IssuerRegExp, SubjectRegExp *regexp.Regexp
}

// CompiledAttestation is a required attestation with an optional condition.
type CompiledAttestation struct {
	Name          string
	PredicateType string
	// Condition is a CEL condition over predicate and predicateType.
	Condition *Condition
	// Policy is a CUE or Rego policy over the whole in-toto statement
	// (policy-controller's attestation policy). At most one of Condition
	// and Policy is set.
	Policy *policyeval.Program
}

// PolicyCheck is a ClusterImagePolicy's spec.policy: a CUE or Rego policy
// over the authorities' results, evaluated once at least one authority
// passed. Include* say what of the admitted object the document holds;
// FetchConfigFile adds the image's config files by platform.
type PolicyCheck struct {
	*policyeval.Program
	FetchConfigFile   bool
	IncludeSpec       bool
	IncludeObjectMeta bool
	IncludeTypeMeta   bool
}

// ValidationPolicy is a compiled ValidationPolicy.
type ValidationPolicy struct {
	Name  string
	File  string
	Mode  Mode
	Rules []Rule
	// Origin: see ImagePolicy.Origin.
	Origin int
	match  matcher
}

// Rule is one compiled validation.
type Rule struct {
	Condition *Condition
	Message   string
}

// Settings are the bundle-wide defaults.
type Settings struct {
	// Name of the Settings document, empty when the bundle has none.
	Name string
	// AllowUnmatched admits images that no ImagePolicy matches.
	AllowUnmatched bool
	// UnmatchedMode is the mode of the verdict on unmatched images.
	UnmatchedMode Mode
	// ExemptNamespaces are never checked.
	ExemptNamespaces []string
	// RefuseClusterReferences refuses policies that read objects from the
	// cluster (see ClusterReference).
	RefuseClusterReferences bool
}

func defaultSettings() Settings { return Settings{UnmatchedMode: ModeEnforce} }

// Settings returns the bundle-wide defaults.
func (s *Set) Settings() Settings { return s.settings }

// ImagePolicies returns every ImagePolicy.
func (s *Set) ImagePolicies() []*ImagePolicy { return s.images }

// ValidationPolicies returns every ValidationPolicy.
func (s *Set) ValidationPolicies() []*ValidationPolicy { return s.validations }

// Len is the number of policies (image and validation).
func (s *Set) Len() int { return len(s.images) + len(s.validations) }

// Exempt reports whether the namespace is exempt from all checks.
func (s *Set) Exempt(namespace string) bool {
	return namespace != "" && slices.Contains(s.settings.ExemptNamespaces, namespace)
}

// UsesNamespaceSelectors reports whether any policy selects namespaces by
// label, so callers know whether to look the labels up.
func (s *Set) UsesNamespaceSelectors() bool { return s.selectors }

// Subject is where a request applies: its namespace (with labels, when a
// policy selects by label), the workload kind, and for ClusterImagePolicy
// match lists the object's group, version, resource and own labels.
type Subject struct {
	Namespace       string
	NamespaceLabels map[string]string
	Kind            string
	Group, Version  string
	// Resource is the kind's resource ("pods"); see ResourceOf.
	Resource string
	// Labels are the admitted object's own labels.
	Labels map[string]string
}

func (m *matcher) matches(s Subject) bool {
	if m.byResource && !slices.ContainsFunc(m.resources, func(r resourceMatch) bool { return r.matches(s) }) {
		return false
	}
	if len(m.kinds) > 0 && !slices.Contains(m.kinds, s.Kind) {
		return false
	}
	if len(m.namespaces) > 0 && !slices.Contains(m.namespaces, s.Namespace) {
		return false
	}
	if m.selector != nil && !m.selector.Matches(labels.Set(s.NamespaceLabels)) {
		return false
	}
	return true
}

// MatchImage returns the image policies (ImagePolicy and
// ClusterImagePolicy) that govern img for the subject, in bundle order and
// without duplicates. An empty result means the image is unmatched (see
// Settings).
func (s *Set) MatchImage(img Image, subj Subject) []*ImagePolicy {
	var hits []int
	s.index.match(img, func(p int) {
		if !slices.Contains(hits, p) && s.images[p].match.matches(subj) {
			hits = append(hits, p)
		}
	})
	slices.Sort(hits)
	out := make([]*ImagePolicy, len(hits))
	for i, p := range hits {
		out[i] = s.images[p]
	}
	return out
}

// MatchValidation returns the ValidationPolicies that apply to the subject.
func (s *Set) MatchValidation(subj Subject) []*ValidationPolicy {
	var out []*ValidationPolicy
	for _, p := range s.validations {
		if p.match.matches(subj) {
			out = append(out, p)
		}
	}
	return out
}

// Merge combines the sets of several sources into one, in order. Each
// policy's Origin is the index of the set it came from. A deny from any
// source wins: every matching policy of every set must pass; an image is
// unmatched only if no set matches it, and is then allowed only if every
// set allows unmatched images; a namespace is exempt only if every set
// exempts it.
func Merge(sets ...*Set) *Set {
	switch len(sets) {
	case 0:
		return Empty()
	case 1:
		return sets[0]
	}
	out := &Set{index: newPatternIndex(), settings: Settings{AllowUnmatched: true, UnmatchedMode: ModeAudit}}
	for i, s := range sets {
		for _, p := range s.images {
			cp := *p
			cp.Origin = i
			idx := len(out.images)
			out.images = append(out.images, &cp)
			out.index.addPolicy(&cp, idx)
		}
		for _, p := range s.validations {
			cp := *p
			cp.Origin = i
			out.validations = append(out.validations, &cp)
		}
		st := s.settings
		out.settings.AllowUnmatched = out.settings.AllowUnmatched && st.AllowUnmatched
		if st.UnmatchedMode.Stricter(out.settings.UnmatchedMode) {
			out.settings.UnmatchedMode = st.UnmatchedMode
		}
		if i == 0 {
			out.settings.ExemptNamespaces = slices.Clone(st.ExemptNamespaces)
		} else {
			out.settings.ExemptNamespaces = slices.DeleteFunc(out.settings.ExemptNamespaces, func(ns string) bool {
				return !slices.Contains(st.ExemptNamespaces, ns)
			})
		}
	}
	return out.seal()
}

// RemoteTrustRoots says which versions of remote TrustRoots (TUF mirrors)
// the set was compiled with ("" for none): a set compiled from the same
// bundle with other trust material differs.
func (s *Set) RemoteTrustRoots() string {
	return strings.Join(slices.Sorted(slices.Values(s.remoteVersions)), ",")
}

// RemoteTrustUntil is when the first remote TrustRoot the set was compiled
// with stops being vouched for by its mirror's metadata (zero for none):
// the set must not be enforced as verified past it.
func (s *Set) RemoteTrustUntil() time.Time { return s.remoteUntil }
