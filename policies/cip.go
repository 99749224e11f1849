package policies

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ward.dev/ward/policies/policyeval"
)

// policy-controller's API group and the versions of it ward reads.
const (
	SigstoreGroup          = "policy.sigstore.dev"
	KindClusterImagePolicy = "ClusterImagePolicy"
	KindTrustRoot          = "TrustRoot"
)

// sigstoreVersions are the apiVersions of policy-controller's documents;
// ClusterImagePolicy is the same in both.
var sigstoreVersions = []string{SigstoreGroup + "/v1alpha1", SigstoreGroup + "/v1beta1"}

// ClusterImagePolicyDoc is a sigstore policy-controller ClusterImagePolicy
// as written, in either served version.
type ClusterImagePolicyDoc struct {
	APIVersion string                 `json:"apiVersion"`
	Kind       string                 `json:"kind"`
	Metadata   ObjectMeta             `json:"metadata"`
	Spec       ClusterImagePolicySpec `json:"spec"`
}

// ClusterImagePolicySpec is policy-controller's spec, field for field.
type ClusterImagePolicySpec struct {
	// Images: globs matched against the whole reference (see
	// compileRefGlob); any one suffices.
	Images      []ImagePattern `json:"images"`
	Authorities []CIPAuthority `json:"authorities,omitempty"`
	// Policy is a CUE or Rego policy over the authorities' results.
	Policy *CIPPolicy `json:"policy,omitempty"`
	// Mode is enforce (default) or warn.
	Mode Mode `json:"mode,omitempty"`
	// Match narrows the policy to resources and object labels.
	Match []MatchResource `json:"match,omitempty"`
}

// MatchResource selects admitted objects by group, version, resource
// ("pods", "deployments") and the object's own labels.
type MatchResource struct {
	Group    string                `json:"group,omitempty"`
	Version  string                `json:"version,omitempty"`
	Resource string                `json:"resource,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// CIPAuthority is policy-controller's authority.
type CIPAuthority struct {
	Name             string           `json:"name,omitempty"`
	Key              *CIPKey          `json:"key,omitempty"`
	Keyless          *CIPKeyless      `json:"keyless,omitempty"`
	Static           *StaticRef       `json:"static,omitempty"`
	Sources          []CIPSource      `json:"source,omitempty"`
	CTLog            *CIPTLog         `json:"ctlog,omitempty"`
	Attestations     []CIPAttestation `json:"attestations,omitempty"`
	RFC3161Timestamp *CIPTimestamp    `json:"rfc3161timestamp,omitempty"`
	SignatureFormat  string           `json:"signatureFormat,omitempty"`
}

// CIPKey is a public key: PEM data, a KMS URI or a Secret.
type CIPKey struct {
	SecretRef     *CIPSecretRef `json:"secretRef,omitempty"`
	Data          string        `json:"data,omitempty"`
	KMS           string        `json:"kms,omitempty"`
	HashAlgorithm string        `json:"hashAlgorithm,omitempty"`
}

// CIPSecretRef names a Secret in the cluster. As in policy-controller,
// the Secret is read from the controller's own namespace, whatever
// Namespace says.
type CIPSecretRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

func (r *CIPSecretRef) local() *LocalObjectReference {
	if r == nil {
		return nil
	}
	return &LocalObjectReference{Name: r.Name}
}

// CIPKeyless is a Fulcio-issued certificate for given identities.
type CIPKeyless struct {
	URL               string     `json:"url,omitempty"`
	Identities        []Identity `json:"identities,omitempty"`
	CACert            *CIPKey    `json:"ca-cert,omitempty"`
	TrustRootRef      string     `json:"trustRootRef,omitempty"`
	InsecureIgnoreSCT bool       `json:"insecureIgnoreSCT,omitempty"`
}

// CIPSource says where signatures live when not beside the image.
type CIPSource struct {
	OCI                  string                 `json:"oci,omitempty"`
	SignaturePullSecrets []LocalObjectReference `json:"signaturePullSecrets,omitempty"`
	TagPrefix            string                 `json:"tagPrefix,omitempty"`
}

// CIPTLog is a Rekor transparency log.
type CIPTLog struct {
	URL          string `json:"url,omitempty"`
	TrustRootRef string `json:"trustRootRef,omitempty"`
}

// CIPTimestamp is an RFC 3161 timestamp authority.
type CIPTimestamp struct {
	TrustRootRef string `json:"trustRootRef,omitempty"`
}

// CIPAttestation requires a signed attestation of a predicate type.
type CIPAttestation struct {
	Name          string     `json:"name"`
	PredicateType string     `json:"predicateType"`
	Policy        *CIPPolicy `json:"policy,omitempty"`
}

// CIPPolicy is a CUE or Rego policy, inline, from a ConfigMap or a URL.
type CIPPolicy struct {
	Type              string         `json:"type"`
	Data              string         `json:"data,omitempty"`
	Remote            map[string]any `json:"remote,omitempty"`
	ConfigMapRef      map[string]any `json:"configMapRef,omitempty"`
	FetchConfigFile   *bool          `json:"fetchConfigFile,omitempty"`
	IncludeSpec       *bool          `json:"includeSpec,omitempty"`
	IncludeObjectMeta *bool          `json:"includeObjectMeta,omitempty"`
	IncludeTypeMeta   *bool          `json:"includeTypeMeta,omitempty"`
}

// clusterImagePolicy compiles a ClusterImagePolicy into the same set as
// ImagePolicies, with policy-controller's meaning: its globs match the
// whole reference, its authorities are alternatives (any one suffices),
// every matching policy must pass, mode warn admits with a warning.
func (c *compiler) clusterImagePolicy(a at, doc *ClusterImagePolicyDoc) {
	s := &doc.Spec
	p := &ImagePolicy{Name: doc.Metadata.Name, Kind: KindClusterImagePolicy, File: a.file, Threshold: 1}
	switch s.Mode {
	case "", ModeEnforce:
		p.Mode = ModeEnforce
	case ModeWarn:
		p.Mode = ModeWarn
	default:
		a.fail("spec.mode", "is %q, want enforce or warn", s.Mode)
	}
	p.match = c.matchResources(a, s.Match)
	if len(s.Images) == 0 {
		a.fail("spec.images", "at least one glob is required")
	}
	for i, img := range s.Images {
		re, g, err := compileRefGlob(img.Glob)
		if err != nil {
			a.fail(fmt.Sprintf("spec.images[%d].glob", i), "%s", err)
			continue
		}
		p.Globs = append(p.Globs, img.Glob)
		p.refs = append(p.refs, refGlob{glob: g, re: re})
	}
	if s.Policy != nil {
		p.Check = c.policyCheck(a, "spec.policy", s.Policy)
	}
	if len(s.Authorities) == 0 {
		a.fail("spec.authorities", "at least one authority is required")
	}
	p.Authorities = named(a, len(s.Authorities), func(field string, i int) *CompiledAuthority {
		ward, ok := c.cipAuthority(a, field, s.Authorities[i])
		if !ok {
			return nil
		}
		return c.authority(a, field, ward)
	})
	c.set.index.addPolicy(p, len(c.set.images))
	c.set.images = append(c.set.images, p)
}

// cipAuthority translates a policy-controller authority into ward's, or
// says which part cannot keep its meaning.
func (c *compiler) cipAuthority(a at, field string, au CIPAuthority) (Authority, bool) {
	out := Authority{Name: au.Name, Static: au.Static}
	ok := true
	if au.Key != nil {
		out.Key = &KeyRef{Data: au.Key.Data, KMS: au.Key.KMS, HashAlgorithm: au.Key.HashAlgorithm, SecretRef: au.Key.SecretRef.local()}
	}
	var keylessRoot *trustRoot
	if k := au.Keyless; k != nil {
		kl := &KeylessRef{Identities: k.Identities, IgnoreSCTUnsafe: k.InsecureIgnoreSCT}
		switch {
		case k.CACert != nil && k.TrustRootRef != "":
			a.fail(field+".keyless", "give ca-cert or trustRootRef, not both")
			ok = false
		case k.CACert != nil && k.CACert.KMS != "":
			a.fail(field+".keyless.ca-cert.kms", "a CA is certificates, not a KMS key: give data or secretRef")
			ok = false
		case k.CACert != nil:
			kl.CACert = &KeyRef{Data: k.CACert.Data, SecretRef: k.CACert.SecretRef.local()}
		case k.TrustRootRef != "":
			if keylessRoot = c.trustRootRef(a, field+".keyless.trustRootRef", k.TrustRootRef); keylessRoot == nil {
				return out, false
			}
			kl.CACert = &KeyRef{Data: keylessRoot.caPEM}
			kl.SCTPublicKeys = keylessRoot.ctlogs
		default:
			// Sigstore's public-good instance, as policy-controller
			// trusts it by default: its trusted root imported into the
			// bundle (ward trustroot import).
			if keylessRoot = c.trustRoots[DefaultTrustRoot]; keylessRoot == nil {
				a.fail(field+".keyless", "neither ca-cert nor trustRootRef: Sigstore's public-good instance is trusted through a TrustRoot %q in the bundle, and there is none (make it with: ward trustroot import --trusted-root trusted_root.json -o policies/%s.yaml)", DefaultTrustRoot, DefaultTrustRoot)
				return out, false
			}
			kl.CACert = &KeyRef{Data: keylessRoot.caPEM}
			kl.SCTPublicKeys = keylessRoot.ctlogs
		}
		if ok && len(kl.SCTPublicKeys) == 0 && !kl.IgnoreSCTUnsafe {
			a.fail(field+".keyless", "certificate timestamps (SCTs) are checked against a TrustRoot's ctLogs: set trustRootRef to a TrustRoot that has them, or insecureIgnoreSCT")
			ok = false
		}
		out.Keyless = kl
	}
	switch len(au.Sources) {
	case 0:
	case 1:
		src := au.Sources[0]
		out.Source = &SignatureSource{OCI: src.OCI, TagPrefix: src.TagPrefix, SignaturePullSecrets: src.SignaturePullSecrets}
	default:
		a.fail(field+".source", "only a single source is supported (as policy-controller)")
		ok = false
	}
	switch {
	case au.CTLog != nil && au.CTLog.TrustRootRef != "":
		tr := c.trustRootRef(a, field+".ctlog.trustRootRef", au.CTLog.TrustRootRef)
		if tr == nil {
			return out, false
		}
		out.CTLog = &TLog{URL: au.CTLog.URL, PublicKeys: tr.tlogs}
	case au.CTLog != nil && keylessRoot != nil:
		// No trustRootRef: the logs of the keyless authority's TrustRoot.
		out.CTLog = &TLog{URL: au.CTLog.URL, PublicKeys: keylessRoot.tlogs}
	case au.CTLog != nil:
		tr := c.trustRoots[DefaultTrustRoot]
		if tr == nil {
			a.fail(field+".ctlog", "no trustRootRef: the log's keys come from a TrustRoot %q in the bundle, and there is none", DefaultTrustRoot)
			return out, false
		}
		out.CTLog = &TLog{URL: au.CTLog.URL, PublicKeys: tr.tlogs}
	case keylessRoot != nil && len(keylessRoot.tlogs) > 0:
		// A keyless authority trusts the logs of its own TrustRoot.
		out.CTLog = &TLog{PublicKeys: keylessRoot.tlogs}
	}
	if ts := au.RFC3161Timestamp; ts != nil {
		f := field + ".rfc3161timestamp.trustRootRef"
		switch tr := c.trustRootRef(a, f, ts.TrustRootRef); {
		case tr == nil:
			ok = false
		case tr.tsaPEM == "":
			a.fail(f, "TrustRoot %q has no timestampAuthorities", ts.TrustRootRef)
			ok = false
		default:
			out.RFC3161Timestamp = &TimestampAuthorities{CertChain: tr.tsaPEM}
		}
	}
	switch au.SignatureFormat {
	case "", "legacy", "bundle":
		// ward reads both formats wherever both exist.
	default:
		a.fail(field+".signatureFormat", "is %q, want legacy or bundle", au.SignatureFormat)
		ok = false
	}
	for i, at := range au.Attestations {
		w := Attestation{Name: at.Name, PredicateType: at.PredicateType}
		if at.Policy != nil {
			f := fmt.Sprintf("%s.attestations[%d].policy", field, i)
			if !inlinePolicy(a, f, at.Policy) {
				ok = false
				continue
			}
			switch at.Policy.Type {
			case policyeval.CUE, policyeval.Rego:
			default:
				a.fail(f+".type", "is %q, want cue or rego", at.Policy.Type)
				ok = false
				continue
			}
			w.Policy = &AttestationPolicy{Type: at.Policy.Type, Data: at.Policy.Data}
		}
		out.Attestations = append(out.Attestations, w)
	}
	return out, ok
}

// inlinePolicy reports whether a policy-controller policy is given inline;
// one read from a URL or a ConfigMap is refused, saying why.
func inlinePolicy(a at, field string, p *CIPPolicy) bool {
	switch {
	case p.Remote != nil:
		a.fail(field+".remote", "a policy fetched from a URL at admission time is outside the bundle's signatures and is not supported: put its text in data")
	case p.ConfigMapRef != nil:
		a.fail(field+".configMapRef", "a policy read from a ConfigMap is outside the bundle's signatures and is not supported: put its text in data")
	case p.Data == "":
		a.fail(field+".data", "is required")
	default:
		return true
	}
	return false
}

// policyCheck compiles spec.policy.
func (c *compiler) policyCheck(a at, field string, p *CIPPolicy) *PolicyCheck {
	if !inlinePolicy(a, field, p) {
		return nil
	}
	prog, err := policyeval.Compile(p.Type, p.Data)
	if err != nil {
		a.fail(field, "%s", err)
		return nil
	}
	return &PolicyCheck{Program: prog,
		FetchConfigFile:   p.FetchConfigFile != nil && *p.FetchConfigFile,
		IncludeSpec:       p.IncludeSpec != nil && *p.IncludeSpec,
		IncludeObjectMeta: p.IncludeObjectMeta != nil && *p.IncludeObjectMeta,
		IncludeTypeMeta:   p.IncludeTypeMeta != nil && *p.IncludeTypeMeta,
	}
}

// kindResources are the resources of the workload kinds, as
// policy-controller derives them (the lower-case plural of the kind).
var kindResources = map[string]string{
	"Pod": "pods", "Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
	"DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs", "ReplicationController": "replicationcontrollers",
}

// ResourceOf is the resource of a workload kind ("pods" for Pod).
func ResourceOf(kind string) string { return kindResources[kind] }

// matchResources compiles policy-controller's match list: an object is
// selected when an entry's resource equals its resource, its version is
// equal or "*", its group equal, and its selector (if any) matches the
// object's own labels. No entries: every object.
func (c *compiler) matchResources(a at, ms []MatchResource) matcher {
	var out matcher
	for i, m := range ms {
		f := fmt.Sprintf("spec.match[%d]", i)
		rm := resourceMatch{group: m.Group, version: m.Version, resource: m.Resource}
		if m.Resource != "" && !slices.Contains(resourceNames(), m.Resource) {
			a.fail(f+".resource", "is %q, want one of %s", m.Resource, strings.Join(resourceNames(), ", "))
		}
		if m.Selector != nil {
			if m.Resource == "" && m.Version == "" && m.Group == "" {
				a.fail(f+".selector", "needs one of resource, version or group")
			}
			sel, err := metav1.LabelSelectorAsSelector(m.Selector)
			if err != nil {
				a.fail(f+".selector", "%s", oneLine(err.Error()))
			} else {
				rm.selector = sel
			}
		}
		out.resources = append(out.resources, rm)
	}
	out.byResource = len(ms) > 0
	return out
}

func resourceNames() []string {
	out := make([]string, 0, len(kindResources))
	for _, r := range kindResources {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}
