// Package convert turns other admission controllers' image-verification
// policies into ward policy documents, saying exactly what could not be
// converted and why. Nothing is converted into a weaker policy: a rule
// ward cannot express with the same or a stricter meaning is left out and
// reported.
package convert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/policies"
)

// Output is one converted ward document.
type Output struct {
	// Name is the document's metadata.name (also a good file name).
	Name string
	// From says which Kyverno policy, rule and entry it came from.
	From string
	Data []byte
}

// Note is something about the conversion a reader must know.
type Note struct {
	// From is "file: policy/rule" (and the entry).
	From string
	// Skipped is true when the part was not converted at all.
	Skipped bool
	// Requires is true when the converted documents need something in the
	// policy folder (Detail says what).
	Requires bool
	// Detail says what was left out, what is stricter, or what is needed.
	Detail string
}

func (n Note) String() string {
	switch {
	case n.Skipped:
		return "not converted: " + n.From + ": " + n.Detail
	case n.Requires:
		return "requires: " + n.From + ": " + n.Detail
	}
	return "converted, stricter: " + n.From + ": " + n.Detail
}

// Result is what a conversion gives.
type Result struct {
	Outputs []Output
	Notes   []Note
}

// Skipped reports whether anything was left out.
func (r *Result) Skipped() bool {
	return slices.ContainsFunc(r.Notes, func(n Note) bool { return n.Skipped })
}

// kyvernoPolicy is the part of a Kyverno ClusterPolicy or Policy
// (kyverno.io/v1) that image verification uses.
type kyvernoPolicy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		ValidationFailureAction          string          `json:"validationFailureAction"`
		ValidationFailureActionOverrides json.RawMessage `json:"validationFailureActionOverrides"`
		Rules                            []kyvernoRule   `json:"rules"`
	} `json:"spec"`
}

type kyvernoRule struct {
	Name          string               `json:"name"`
	Match         *kyvernoMatch        `json:"match"`
	Exclude       json.RawMessage      `json:"exclude"`
	Preconditions json.RawMessage      `json:"preconditions"`
	Context       json.RawMessage      `json:"context"`
	VerifyImages  []kyvernoVerifyImage `json:"verifyImages"`
}

type kyvernoMatch struct {
	Any       []kyvernoFilter   `json:"any"`
	All       []kyvernoFilter   `json:"all"`
	Resources *kyvernoResources `json:"resources"`
}

type kyvernoFilter struct {
	Resources *kyvernoResources `json:"resources"`
	Subjects  json.RawMessage   `json:"subjects"`
	Roles     json.RawMessage   `json:"roles"`
}

type kyvernoResources struct {
	Kinds             []string              `json:"kinds"`
	Namespaces        []string              `json:"namespaces"`
	Names             []string              `json:"names"`
	Name              string                `json:"name"`
	Selector          *metav1.LabelSelector `json:"selector"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`
	Operations        []string              `json:"operations"`
	Annotations       map[string]string     `json:"annotations"`
}

type kyvernoVerifyImage struct {
	Type                     string               `json:"type"`
	ImageReferences          []string             `json:"imageReferences"`
	SkipImageReferences      []string             `json:"skipImageReferences"`
	Attestors                []kyvernoAttestorSet `json:"attestors"`
	Attestations             []kyvernoAttestation `json:"attestations"`
	Repository               string               `json:"repository"`
	MutateDigest             *bool                `json:"mutateDigest"`
	VerifyDigest             *bool                `json:"verifyDigest"`
	Required                 *bool                `json:"required"`
	FailureAction            string               `json:"failureAction"`
	ImageRegistryCredentials *struct {
		Secrets []string `json:"secrets"`
	} `json:"imageRegistryCredentials"`
	// Annotations the signed payload must carry (not converted).
	Annotations map[string]string `json:"annotations"`
	// Old single-key and keyless shorthands (Kyverno 1.7).
	Key     string `json:"key"`
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Roots   string `json:"roots"`
	Image   string `json:"image"`
}

type kyvernoAttestorSet struct {
	Count   *int              `json:"count"`
	Entries []kyvernoAttestor `json:"entries"`
}

type kyvernoAttestor struct {
	// Annotations the signed payload must carry (not converted).
	Annotations  map[string]string    `json:"annotations"`
	Keys         *kyvernoKeys         `json:"keys"`
	Keyless      *kyvernoKeyless      `json:"keyless"`
	Certificates *kyvernoCertificates `json:"certificates"`
	Attestor     json.RawMessage      `json:"attestor"`
	Repository   string               `json:"repository"`
}

type kyvernoKeys struct {
	PublicKeys         string `json:"publicKeys"`
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	KMS                string `json:"kms"`
	Secret             *struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"secret"`
	Rekor *kyvernoRekor `json:"rekor"`
	CTLog *kyvernoCTLog `json:"ctlog"`
}

type kyvernoKeyless struct {
	Subject              string            `json:"subject"`
	SubjectRegExp        string            `json:"subjectRegExp"`
	Issuer               string            `json:"issuer"`
	IssuerRegExp         string            `json:"issuerRegExp"`
	Roots                string            `json:"roots"`
	AdditionalExtensions map[string]string `json:"additionalExtensions"`
	Rekor                *kyvernoRekor     `json:"rekor"`
	CTLog                *kyvernoCTLog     `json:"ctlog"`
}

type kyvernoCertificates struct {
	Cert      string        `json:"cert"`
	CertChain string        `json:"certChain"`
	Rekor     *kyvernoRekor `json:"rekor"`
	CTLog     *kyvernoCTLog `json:"ctlog"`
}

type kyvernoRekor struct {
	URL        string `json:"url"`
	PubKey     string `json:"pubkey"`
	IgnoreTlog bool   `json:"ignoreTlog"`
}

type kyvernoCTLog struct {
	IgnoreSCT bool   `json:"ignoreSCT"`
	PubKey    string `json:"pubkey"`
}

type kyvernoAttestation struct {
	Type          string               `json:"type"`
	PredicateType string               `json:"predicateType"`
	Name          string               `json:"name"`
	Attestors     []kyvernoAttestorSet `json:"attestors"`
	Conditions    []kyvernoConditions  `json:"conditions"`
}

type kyvernoConditions struct {
	Any []kyvernoCondition `json:"any"`
	All []kyvernoCondition `json:"all"`
}

type kyvernoCondition struct {
	Key      any    `json:"key"`
	Operator string `json:"operator"`
	Value    any    `json:"value"`
	Message  string `json:"message"`
}

// PublicGoodTrustRoot is the TrustRoot converted keyless attestors
// without roots refer to: Sigstore's public-good instance, imported with
// ward trustroot import.
const PublicGoodTrustRoot = policies.DefaultTrustRoot

// Kyverno converts the verifyImages rules of the Kyverno ClusterPolicies
// and Policies in data (one or more YAML documents) into ward
// ImagePolicies. file names the input in notes. Documents of other kinds
// and rules without verifyImages are reported, not converted. The error
// is for input that is not YAML.
func Kyverno(file string, data []byte) (*Result, error) {
	res := &Result{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not YAML: %w", file, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "---" {
			continue
		}
		var list struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if err := yaml.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		if list.Kind == "List" || strings.HasSuffix(list.Kind, "List") && list.Items != nil {
			// kubectl get … -o yaml
			for i, item := range list.Items {
				sub, err := Kyverno(fmt.Sprintf("%s: document %d items[%d]", file, n, i), item)
				if err != nil {
					return nil, err
				}
				res.Outputs = append(res.Outputs, sub.Outputs...)
				res.Notes = append(res.Notes, sub.Notes...)
			}
			continue
		}
		var p kyvernoPolicy
		if err := yaml.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
		}
		if !strings.HasPrefix(p.APIVersion, "kyverno.io/") || (p.Kind != "ClusterPolicy" && p.Kind != "Policy") {
			res.Notes = append(res.Notes, Note{From: fmt.Sprintf("%s: document %d", file, n), Skipped: true,
				Detail: fmt.Sprintf("%s %s is not a Kyverno ClusterPolicy or Policy", p.APIVersion, p.Kind)})
			continue
		}
		for _, rule := range p.Spec.Rules {
			convertRule(res, file, &p, rule)
		}
	}
}

// converter holds what one verifyImages entry's conversion needs.
type converter struct {
	res  *Result
	from string
	ok   bool
	// notary is set for a verifyImages entry of type Notary: its
	// certificates attestors become notation authorities.
	notary bool
}

func (c *converter) skip(format string, args ...any) {
	c.res.Notes = append(c.res.Notes, Note{From: c.from, Skipped: true, Detail: fmt.Sprintf(format, args...)})
	c.ok = false
}

func (c *converter) stricter(format string, args ...any) {
	c.res.Notes = append(c.res.Notes, Note{From: c.from, Detail: fmt.Sprintf(format, args...)})
}

func convertRule(res *Result, file string, p *kyvernoPolicy, rule kyvernoRule) {
	from := fmt.Sprintf("%s: %s/%s", file, p.Metadata.Name, rule.Name)
	if len(rule.VerifyImages) == 0 {
		res.Notes = append(res.Notes, Note{From: from, Skipped: true, Detail: "the rule has no verifyImages (only image verification is converted; write other checks as a ValidationPolicy with CEL)"})
		return
	}
	for i, vi := range rule.VerifyImages {
		c := &converter{res: res, from: from, ok: true}
		if len(rule.VerifyImages) > 1 {
			c.from = fmt.Sprintf("%s verifyImages[%d]", from, i)
		}
		docs := c.verifyImage(p, rule, vi, i)
		if c.ok {
			res.Outputs = append(res.Outputs, docs...)
		}
	}
}

// verifyImage converts one verifyImages entry: each attestor set becomes an
// ImagePolicy (every set must pass, as every matching ImagePolicy must),
// its entries the authorities, its count the threshold; each attestation
// becomes ImagePolicies of its own attestor sets with the conditions in CEL.
func (c *converter) verifyImage(p *kyvernoPolicy, rule kyvernoRule, vi kyvernoVerifyImage, index int) []Output {
	switch vi.Type {
	case "", "Cosign":
	case "Notary":
		// Kyverno verifies Notary signatures with notation-go: the
		// attestor's cert and certChain make one "ca" trust store, any
		// identity it covers, level strict.
		c.notary = true
		if len(vi.Attestations) > 0 {
			c.skip("attestations of type Notary are not converted: ward's attestations are cosign's (in-toto statements)")
			return nil
		}
	default:
		c.skip("type %s: ward verifies cosign and Notary signatures", vi.Type)
		return nil
	}
	if vi.Key != "" || vi.Subject != "" || vi.Roots != "" {
		// Kyverno 1.7's shorthand: one attestor.
		vi.Attestors = append(vi.Attestors, kyvernoAttestorSet{Entries: []kyvernoAttestor{shorthand(vi)}})
	}
	if len(vi.ImageReferences) == 0 && vi.Image != "" {
		vi.ImageReferences = []string{vi.Image}
	}
	globs := c.globs(vi.ImageReferences)
	if len(vi.SkipImageReferences) > 0 {
		c.stricter("skipImageReferences %v are not converted: those images are checked too", vi.SkipImageReferences)
	}
	if vi.MutateDigest != nil && !*vi.MutateDigest {
		c.stricter("mutateDigest: false: ward always pins verified images to their digest")
	}
	if vi.VerifyDigest != nil && !*vi.VerifyDigest {
		c.stricter("verifyDigest: false: ward always verifies by digest")
	}
	if vi.Required != nil && !*vi.Required {
		c.stricter("required: false: ward requires the verification to pass")
	}
	if len(vi.Annotations) > 0 {
		c.skip("annotations %v the signature must carry are not converted", vi.Annotations)
	}
	if p.Spec.ValidationFailureActionOverrides != nil && vi.FailureAction == "" {
		c.skip("validationFailureActionOverrides (a mode per namespace) are not converted")
	}
	mode := c.mode(p.Spec.ValidationFailureAction, vi.FailureAction)
	match := c.match(p, rule)
	var pullSecrets []string
	if vi.ImageRegistryCredentials != nil {
		pullSecrets = vi.ImageRegistryCredentials.Secrets
	}
	base := fmt.Sprintf("%s-%s", p.Metadata.Name, rule.Name)
	if index > 0 {
		base += fmt.Sprintf("-%d", index)
	}
	var out []Output
	emit := func(suffix string, set kyvernoAttestorSet, att *policies.Attestation) {
		name := dnsName(base + suffix)
		auths, threshold := c.attestorSet(set, vi.Repository, pullSecrets)
		if att != nil {
			for i := range auths {
				auths[i].Attestations = []policies.Attestation{*att}
			}
		}
		doc := policies.ImagePolicyDoc{APIVersion: policies.APIVersion, Kind: policies.KindImagePolicy,
			Metadata: policies.ObjectMeta{Name: name, Annotations: map[string]string{"ward.dev/converted-from": strings.TrimSpace(c.from)}},
			Spec:     policies.ImagePolicySpec{Mode: mode, Images: globs, Match: match, Authorities: auths}}
		if threshold > 1 {
			doc.Spec.Threshold = threshold
		}
		data, err := yaml.Marshal(doc)
		if err != nil {
			c.skip("%s", err)
			return
		}
		out = append(out, Output{Name: name, From: c.from, Data: data})
	}
	if len(vi.Attestors) == 0 && len(vi.Attestations) == 0 {
		c.skip("no attestors and no attestations: nothing says who must sign")
		return nil
	}
	for i, set := range vi.Attestors {
		suffix := ""
		if len(vi.Attestors) > 1 {
			suffix = fmt.Sprintf("-%d", i)
		}
		emit(suffix, set, nil)
	}
	for i, a := range vi.Attestations {
		pt := a.PredicateType
		if pt == "" {
			pt = a.Type
		}
		if pt == "" {
			c.skip("attestations[%d] names no predicateType", i)
			continue
		}
		cond := c.conditions(a.Conditions, i)
		name := a.Name
		if name == "" {
			name = fmt.Sprintf("attestation-%d", i)
		}
		att := &policies.Attestation{Name: dnsName(name), PredicateType: pt}
		if cond != "" {
			att.Policy = &policies.AttestationPolicy{Type: "cel", Data: cond}
		}
		sets := a.Attestors
		if len(sets) == 0 {
			sets = vi.Attestors
		}
		if len(sets) == 0 {
			c.skip("attestations[%d] has no attestors: nothing says who must sign it", i)
			continue
		}
		for j, set := range sets {
			suffix := fmt.Sprintf("-att%d", i)
			if len(sets) > 1 {
				suffix += fmt.Sprintf("-%d", j)
			}
			emit(suffix, set, att)
		}
	}
	return out
}

func shorthand(vi kyvernoVerifyImage) kyvernoAttestor {
	if vi.Key != "" {
		return kyvernoAttestor{Keys: &kyvernoKeys{PublicKeys: vi.Key}}
	}
	return kyvernoAttestor{Keyless: &kyvernoKeyless{Subject: vi.Subject, Issuer: vi.Issuer, Roots: vi.Roots}}
}

func (c *converter) mode(policyAction, entryAction string) policies.Mode {
	action := policyAction
	if entryAction != "" {
		action = entryAction
	}
	switch strings.ToLower(action) {
	case "", "audit":
		// Kyverno's default is Audit.
		return policies.ModeAudit
	case "enforce":
		return policies.ModeEnforce
	}
	c.skip("failure action %q is neither Enforce nor Audit", action)
	return ""
}

// match converts match.any/all resources: kinds, namespaces and namespace
// selectors. A Policy (namespaced) applies in its namespace.
func (c *converter) match(p *kyvernoPolicy, rule kyvernoRule) *policies.Match {
	m := &policies.Match{}
	if p.Kind == "Policy" && p.Metadata.Namespace != "" {
		m.Namespaces = []string{p.Metadata.Namespace}
	}
	var filters []kyvernoFilter
	if rule.Match != nil {
		filters = append(append(filters, rule.Match.Any...), rule.Match.All...)
		if rule.Match.Resources != nil {
			filters = append(filters, kyvernoFilter{Resources: rule.Match.Resources})
		}
	}
	if len(filters) > 1 {
		// Several filters (any: a union, all: an intersection) do not map
		// onto one match: the policy applies to every object.
		c.stricter("match has %d filters: not converted, every object in every namespace is checked", len(filters))
		filters = nil
	}
	for _, f := range filters {
		if f.Subjects != nil || f.Roles != nil {
			c.stricter("match by subjects or roles is not converted: every requester is checked")
		}
		r := f.Resources
		if r == nil {
			continue
		}
		for _, k := range r.Kinds {
			k = k[strings.LastIndex(k, "/")+1:]
			switch {
			case k == "Pod":
				// Kyverno applies Pod rules to the controllers that make
				// Pods too (auto-gen): every workload kind.
			case slices.Contains(policies.WorkloadKinds, k):
				m.Kinds = append(m.Kinds, k)
			default:
				c.stricter("kind %s is not a workload ward checks: ignored", k)
			}
		}
		if slices.Contains(r.Kinds, "Pod") || slices.ContainsFunc(r.Kinds, func(k string) bool { return strings.HasSuffix(k, "/Pod") }) {
			m.Kinds = nil
		}
		if len(r.Namespaces) > 0 {
			if slices.ContainsFunc(r.Namespaces, func(ns string) bool { return strings.ContainsAny(ns, "*?") }) {
				c.stricter("namespace patterns %v are not converted: every namespace is checked", r.Namespaces)
			} else if p.Kind != "Policy" {
				m.Namespaces = append(m.Namespaces, r.Namespaces...)
			}
		}
		if r.NamespaceSelector != nil {
			m.NamespaceSelector = r.NamespaceSelector
		}
		if r.Selector != nil || len(r.Names) > 0 || r.Name != "" || len(r.Annotations) > 0 || len(r.Operations) > 0 {
			c.stricter("match by object labels, names, annotations or operations is not converted: every object is checked")
		}
	}
	if rule.Exclude != nil {
		c.stricter("exclude is not converted: excluded objects are checked too (ward's Settings exemptNamespaces exempts whole namespaces)")
	}
	if rule.Preconditions != nil || rule.Context != nil {
		c.stricter("preconditions and context are not converted: the rule always applies")
	}
	if len(m.Namespaces) == 0 && len(m.Kinds) == 0 && m.NamespaceSelector == nil {
		return nil
	}
	return m
}

// globs converts Kyverno image references (wildcards over the whole
// reference: "*" any run, "?" one character) into ward globs over the
// repository. A pattern that names tags or digests is not converted.
func (c *converter) globs(refs []string) []policies.ImagePattern {
	var out []policies.ImagePattern
	add := func(g string) {
		if !slices.ContainsFunc(out, func(p policies.ImagePattern) bool { return p.Glob == g }) {
			out = append(out, policies.ImagePattern{Glob: g})
		}
	}
	for _, ref := range refs {
		repo := ref
		if i := strings.Index(repo, "@"); i >= 0 {
			c.skip("image reference %q names a digest: ward's globs match repositories", ref)
			continue
		}
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			if tag := repo[i+1:]; tag != "*" {
				c.skip("image reference %q names tag %q: ward's globs match repositories (and pin what they verify to digests)", ref, tag)
				continue
			}
			repo = repo[:i]
		}
		if repo == "*" || repo == "**" {
			add("**")
			continue
		}
		segs := strings.Split(repo, "/")
		for i, s := range segs {
			switch {
			case s == "*":
				segs[i] = "**"
			case strings.Contains(s, "*") && i < len(segs)-1:
				c.stricter("in %q, * no longer spans /: images below are not matched by this policy (and, unmatched, denied)", ref)
			}
		}
		g := strings.Join(segs, "/")
		add(g)
		if last := segs[len(segs)-1]; strings.Contains(last, "*") && last != "**" {
			// Kyverno's trailing "app*" also matches "app/sub".
			add(g + "/**")
		}
	}
	if len(out) == 0 {
		c.skip("no image reference could be converted")
	}
	return out
}

// attestorSet converts attestor entries into authorities; count is the
// threshold (Kyverno's default: every entry).
func (c *converter) attestorSet(set kyvernoAttestorSet, repository string, pullSecrets []string) ([]policies.Authority, int) {
	var auths []policies.Authority
	for i, e := range set.Entries {
		repo := repository
		if e.Repository != "" {
			repo = e.Repository
		}
		var src *policies.SignatureSource
		if repo != "" || len(pullSecrets) > 0 {
			src = &policies.SignatureSource{OCI: repo}
			for _, s := range pullSecrets {
				src.SignaturePullSecrets = append(src.SignaturePullSecrets, policies.LocalObjectReference{Name: s})
			}
		}
		switch {
		case len(e.Annotations) > 0:
			c.skip("entries[%d].annotations %v the signature must carry are not converted", i, e.Annotations)
		case e.Attestor != nil:
			c.skip("entries[%d].attestor (a nested attestor set) is not converted", i)
		case c.notary:
			if a, ok := c.notaryCertificates(i, e, src); ok {
				auths = append(auths, a)
			}
		case e.Keys != nil:
			auths = append(auths, c.keys(i, e.Keys, src)...)
		case e.Keyless != nil:
			if a, ok := c.keyless(i, e.Keyless, src); ok {
				auths = append(auths, a)
			}
		case e.Certificates != nil:
			c.skip("entries[%d].certificates (a fixed signing certificate) is not converted: use its key as a key attestor", i)
		default:
			c.skip("entries[%d] has no keys, keyless or certificates", i)
		}
	}
	for i := range auths {
		auths[i].Name = fmt.Sprintf("entry-%d", i)
	}
	threshold := len(auths)
	if set.Count != nil {
		threshold = *set.Count
	}
	if threshold > len(auths) {
		c.skip("count %d is more than the %d converted entries", threshold, len(auths))
	}
	return auths, threshold
}

// notaryCertificates converts a Notary attestor: its certificates, which
// Kyverno puts in one "ca" trust store and trusts for any identity at
// level strict. A trust store of notation's holds CAs and self-signed
// certificates only; a pinned leaf that is neither is not converted.
func (c *converter) notaryCertificates(i int, e kyvernoAttestor, src *policies.SignatureSource) (policies.Authority, bool) {
	if e.Certificates == nil || (e.Certificates.Cert == "" && e.Certificates.CertChain == "") {
		c.skip("entries[%d]: a Notary attestor takes certificates (cert, certChain); keys and keyless are cosign's", i)
		return policies.Authority{}, false
	}
	pemData := strings.TrimSpace(e.Certificates.Cert) + "\n" + strings.TrimSpace(e.Certificates.CertChain)
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(strings.TrimSpace(pemData)))
	if err != nil || len(certs) == 0 {
		c.skip("entries[%d].certificates holds no PEM certificates", i)
		return policies.Authority{}, false
	}
	for _, cert := range certs {
		if err := policies.NotationStoreCertificate("ca", cert); err != nil {
			c.skip("entries[%d].certificates: %s; a Notation trust store holds the CA (or a self-signed signing certificate), so put the CA that issued it in certChain", i, err)
			return policies.Authority{}, false
		}
	}
	if src != nil && src.OCI != "" {
		c.skip("entries[%d]: repository %s: Notation signatures are read as referrers of the image itself", i, src.OCI)
		return policies.Authority{}, false
	}
	if e.Certificates.Rekor != nil || e.Certificates.CTLog != nil {
		c.stricter("entries[%d].certificates rekor and ctlog do not apply to Notary signatures: not converted", i)
	}
	return policies.Authority{
		Notation: &policies.NotationRef{
			TrustStore:        policies.NotationTrustStore{CA: &policies.CertificatesRef{Data: strings.TrimSpace(pemData) + "\n"}},
			TrustedIdentities: []string{"*"},
		},
		Source: src,
	}, true
}

func (c *converter) keys(i int, k *kyvernoKeys, src *policies.SignatureSource) []policies.Authority {
	var out []policies.Authority
	hash := ""
	switch strings.ToLower(k.SignatureAlgorithm) {
	case "", "sha256":
	case "sha384", "sha512":
		hash = strings.ToLower(k.SignatureAlgorithm)
	default:
		c.skip("entries[%d].keys.signatureAlgorithm %q is not sha256, sha384 or sha512", i, k.SignatureAlgorithm)
	}
	tlog, ok := c.rekor(i, k.Rekor)
	if !ok {
		return nil
	}
	switch {
	case k.PublicKeys != "":
		if strings.HasPrefix(strings.TrimSpace(k.PublicKeys), "k8s://") {
			c.skip("entries[%d].keys.publicKeys %q reads a Secret by URI: use keys.secret", i, k.PublicKeys)
			return nil
		}
		// Several PEM keys are several entries, as Kyverno counts them.
		for _, pemKey := range splitPEM(k.PublicKeys) {
			if _, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(pemKey)); err != nil {
				c.skip("entries[%d].keys.publicKeys holds something that is not a PEM public key", i)
				return nil
			}
			out = append(out, policies.Authority{Key: &policies.KeyRef{Data: pemKey, HashAlgorithm: hash}, CTLog: tlog, Source: src})
		}
	case k.KMS != "":
		out = append(out, policies.Authority{Key: &policies.KeyRef{KMS: k.KMS, HashAlgorithm: hash}, CTLog: tlog, Source: src})
	case k.Secret != nil:
		c.stricter("entries[%d].keys.secret %s/%s is read from ward's own namespace (key.secretRef), not %s", i, k.Secret.Namespace, k.Secret.Name, orDefault(k.Secret.Namespace, "the policy's"))
		out = append(out, policies.Authority{Key: &policies.KeyRef{SecretRef: &policies.LocalObjectReference{Name: k.Secret.Name}, HashAlgorithm: hash}, CTLog: tlog, Source: src})
	default:
		c.skip("entries[%d].keys has no publicKeys, kms or secret", i)
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// publicRekor is Sigstore's public-good Rekor, Kyverno's default log.
const publicRekor = "https://rekor.sigstore.dev"

// rekor converts a Kyverno rekor block: ignoreTlog drops the log; a
// pubkey is the log's key; the public instance (Kyverno's default) is
// checked offline with the Rekor keys of the public-good TrustRoot; another
// log without its key cannot be checked offline.
func (c *converter) rekor(i int, r *kyvernoRekor) (*policies.TLog, bool) {
	switch {
	case r != nil && r.IgnoreTlog:
		return nil, true
	case r != nil && r.PubKey != "":
		return &policies.TLog{URL: r.URL, PublicKeys: splitPEM(r.PubKey)}, true
	case r == nil || r.URL == "" || strings.TrimSuffix(r.URL, "/") == publicRekor:
		c.needsPublicGood()
		return &policies.TLog{URL: publicRekor, TrustRootRef: PublicGoodTrustRoot}, true
	}
	c.skip("entries[%d].rekor.url %s without rekor.pubkey: ward checks log entries offline and needs the log's key", i, r.URL)
	return nil, false
}

// needsPublicGood notes that the documents refer to the public-good
// TrustRoot.
func (c *converter) needsPublicGood() {
	n := Note{From: c.from, Requires: true, Detail: "TrustRoot " + PublicGoodTrustRoot + " in the policy folder (Sigstore's public-good Fulcio and Rekor): ward trustroot import --trusted-root trusted_root.json -o policies/" + PublicGoodTrustRoot + ".yaml"}
	if !slices.Contains(c.res.Notes, n) {
		c.res.Notes = append(c.res.Notes, n)
	}
}

func (c *converter) keyless(i int, k *kyvernoKeyless, src *policies.SignatureSource) (policies.Authority, bool) {
	id := policies.Identity{Issuer: k.Issuer, Subject: k.Subject, IssuerRegExp: k.IssuerRegExp, SubjectRegExp: k.SubjectRegExp}
	// Kyverno's subject and issuer accept wildcards.
	id.Subject, id.SubjectRegExp = wildcardIdentity(id.Subject, id.SubjectRegExp)
	id.Issuer, id.IssuerRegExp = wildcardIdentity(id.Issuer, id.IssuerRegExp)
	if id.Subject == "" && id.SubjectRegExp == "" {
		c.skip("entries[%d].keyless names no subject: ward requires one (any identity of the issuer would pass)", i)
		return policies.Authority{}, false
	}
	if id.Issuer == "" && id.IssuerRegExp == "" {
		c.skip("entries[%d].keyless names no issuer: ward requires one", i)
		return policies.Authority{}, false
	}
	if len(k.AdditionalExtensions) > 0 {
		c.skip("entries[%d].keyless.additionalExtensions are not converted", i)
		return policies.Authority{}, false
	}
	kl := &policies.KeylessRef{Identities: []policies.Identity{id}}
	if k.Roots != "" {
		kl.CACert = &policies.KeyRef{Data: k.Roots}
	} else {
		kl.TrustRootRef = PublicGoodTrustRoot
		c.needsPublicGood()
	}
	switch {
	case k.CTLog != nil && k.CTLog.IgnoreSCT:
		kl.IgnoreSCTUnsafe = true
	case k.CTLog != nil && k.CTLog.PubKey != "":
		kl.SCTPublicKeys = splitPEM(k.CTLog.PubKey)
	case k.Roots != "":
		c.skip("entries[%d].keyless: roots without ctlog.pubkey or ctlog.ignoreSCT: the certificate timestamps' log key is not known", i)
		return policies.Authority{}, false
	}
	tlog, ok := c.rekor(i, k.Rekor)
	if !ok {
		return policies.Authority{}, false
	}
	if tlog == nil {
		c.skip("entries[%d].keyless with rekor.ignoreTlog: ward needs the log (or a timestamp authority) for the signing time of a short-lived certificate", i)
		return policies.Authority{}, false
	}
	return policies.Authority{Keyless: kl, CTLog: tlog, Source: src}, true
}

// wildcardIdentity turns Kyverno's wildcard subject or issuer ("*" any
// run, "?" one character) into an anchored regexp.
func wildcardIdentity(exact, re string) (string, string) {
	if re != "" || !strings.ContainsAny(exact, "*?") {
		return exact, re
	}
	return "", "^" + globRegexp(exact) + "$"
}

func splitPEM(s string) []string {
	var out []string
	for _, part := range strings.SplitAfter(s, "-----END PUBLIC KEY-----") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p+"\n")
		}
	}
	return out
}

// dnsName makes a valid metadata.name.
func dnsName(s string) string {
	s = strings.ToLower(s)
	s = regexp.MustCompile(`[^a-z0-9.-]+`).ReplaceAllString(s, "-")
	s = strings.Trim(s, "-.")
	if len(s) > validation.DNS1123SubdomainMaxLength {
		s = strings.Trim(s[:validation.DNS1123SubdomainMaxLength], "-.")
	}
	if s == "" {
		s = "converted"
	}
	return s
}

// conditions converts attestation conditions (JMESPath keys over the
// predicate, Kyverno operators) into one CEL expression over predicate.
func (c *converter) conditions(cs []kyvernoConditions, index int) string {
	var parts []string
	for _, block := range cs {
		var any, all []string
		for _, k := range block.Any {
			if e, ok := c.condition(k, index); ok {
				any = append(any, e)
			}
		}
		for _, k := range block.All {
			if e, ok := c.condition(k, index); ok {
				all = append(all, e)
			}
		}
		if len(any) > 0 {
			parts = append(parts, "("+strings.Join(any, " || ")+")")
		}
		parts = append(parts, all...)
	}
	return strings.Join(parts, " && ")
}

var jmesPath = regexp.MustCompile(`^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"]+"))*)\s*\}\}$`)

func (c *converter) condition(k kyvernoCondition, index int) (string, bool) {
	key, _ := k.Key.(string)
	m := jmesPath.FindStringSubmatch(strings.TrimSpace(key))
	if m == nil {
		c.skip("attestations[%d]: condition key %v is not a plain path like {{ builder.id }}", index, k.Key)
		return "", false
	}
	path := "predicate"
	for _, seg := range splitPath(m[1]) {
		if regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(seg) {
			path += "." + seg
		} else {
			path += "[" + strconv.Quote(seg) + "]"
		}
	}
	val, err := celLiteral(k.Value)
	if err != nil {
		c.skip("attestations[%d]: condition value %v: %s", index, k.Value, err)
		return "", false
	}
	if s, ok := k.Value.(string); ok && strings.ContainsAny(s, "*?") && (k.Operator == "Equals" || k.Operator == "NotEquals") {
		re := strconv.Quote("^" + globRegexp(s) + "$")
		if k.Operator == "Equals" {
			return path + ".matches(" + re + ")", true
		}
		return "!" + path + ".matches(" + re + ")", true
	}
	switch k.Operator {
	case "Equals", "Equal":
		return path + " == " + val, true
	case "NotEquals", "NotEqual":
		return path + " != " + val, true
	case "In", "AnyIn":
		if _, isList := k.Value.([]any); !isList {
			val = "[" + val + "]"
		}
		return path + " in " + val, true
	case "GreaterThan", "GreaterThanOrEquals", "LessThan", "LessThanOrEquals":
		if _, isNumber := k.Value.(float64); !isNumber {
			c.skip("attestations[%d]: %s on %v compares quantities, durations or versions in Kyverno, not text", index, k.Operator, k.Value)
			return "", false
		}
	}
	switch k.Operator {
	case "GreaterThan":
		return path + " > " + val, true
	case "GreaterThanOrEquals":
		return path + " >= " + val, true
	case "LessThan":
		return path + " < " + val, true
	case "LessThanOrEquals":
		return path + " <= " + val, true
	}
	c.skip("attestations[%d]: condition operator %s is not converted", index, k.Operator)
	return "", false
}

func splitPath(p string) []string {
	var out []string
	for p != "" {
		if strings.HasPrefix(p, `"`) {
			end := strings.Index(p[1:], `"`) + 1
			out = append(out, p[1:end])
			p = strings.TrimPrefix(p[end+1:], ".")
			continue
		}
		seg, rest, _ := strings.Cut(p, ".")
		out = append(out, seg)
		p = rest
	}
	return out
}

func celLiteral(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := celLiteral(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("a %T is not converted", v)
}

// globRegexp is Kyverno's wildcard ("*" any run, "?" one character) as
// an unanchored regular expression.
func globRegexp(g string) string {
	var b strings.Builder
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}
