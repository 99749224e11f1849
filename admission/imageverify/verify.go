package imageverify

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	sigtuf "github.com/sigstore/sigstore/pkg/tuf"

	"ward.dev/ward/policies"
)

// Formats of signature, as reported in results.
const (
	FormatSigTag = "sig-tag" // legacy cosign "sha256-<hex>.sig" tag
	FormatBundle = "bundle"  // Sigstore bundle stored as an OCI referrer
)

// DefaultMaxReferrers bounds how many referrers of one image are read.
const DefaultMaxReferrers = 32

// Verifier checks images against authorities. It is safe for concurrent
// use. The zero value is not usable; call New.
type Verifier struct {
	transport    http.RoundTripper
	maxBytes     int64
	maxReferrers int
	kmsOpts      []signature.RPCOption

	// revocation checks Notation signers' certificates.
	revocation *revocationValidators

	mu  sync.Mutex
	kms map[string]signature.Verifier
}

// Option configures a Verifier.
type Option func(*verifierOptions)

type verifierOptions struct {
	roots        *x509.CertPool
	transport    http.RoundTripper
	maxBytes     int64
	maxReferrers int
	kmsOpts      []signature.RPCOption
}

// WithRootCAs trusts these CAs for registry TLS instead of the system's.
func WithRootCAs(pool *x509.CertPool) Option { return func(o *verifierOptions) { o.roots = pool } }

// WithTransport sets the HTTP transport to registries (it is still wrapped
// in the response size bound).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *verifierOptions) { o.transport = rt }
}

// WithMaxResponseBytes bounds each registry response body (default
// DefaultMaxResponseBytes).
func WithMaxResponseBytes(n int64) Option { return func(o *verifierOptions) { o.maxBytes = n } }

// WithMaxReferrers bounds how many referrers of an image are read (default
// DefaultMaxReferrers).
func WithMaxReferrers(n int) Option { return func(o *verifierOptions) { o.maxReferrers = n } }

// WithKMSOptions passes options to the KMS provider of every key.kms
// authority (a provider's own client options: endpoint, credentials).
func WithKMSOptions(opts ...signature.RPCOption) Option {
	return func(o *verifierOptions) { o.kmsOpts = append(o.kmsOpts, opts...) }
}

// New makes a Verifier.
func New(opts ...Option) *Verifier {
	o := verifierOptions{maxBytes: DefaultMaxResponseBytes, maxReferrers: DefaultMaxReferrers}
	for _, opt := range opts {
		opt(&o)
	}
	var rt http.RoundTripper
	if o.transport != nil {
		rt = &boundedTransport{next: o.transport, max: o.maxBytes}
	} else {
		rt = newTransport(o.roots, o.maxBytes)
	}
	out := &Verifier{transport: rt, maxBytes: o.maxBytes, maxReferrers: o.maxReferrers, kmsOpts: o.kmsOpts, kms: map[string]signature.Verifier{}}
	// OCSP responders and CRL distribution points are public endpoints:
	// the system's roots, not the registries', and CRL-sized bounds.
	if rv, err := newRevocationValidators(newTransport(nil, maxCRLBytes)); err == nil {
		out.revocation = &rv
	}
	return out
}

func (v *Verifier) remoteOptions(ctx context.Context, kc authn.Keychain) []remote.Option {
	if kc == nil {
		kc = authn.NewMultiKeychain() // anonymous
	}
	return []remote.Option{
		remote.WithContext(ctx), remote.WithTransport(v.transport), remote.WithAuthFromKeychain(kc),
		// A webhook has seconds: one quick retry, then give up.
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
	}
}

// Resolve returns the digest an image reference names; a digest reference
// is returned as is, a tag is resolved with the registry.
func (v *Verifier) Resolve(ctx context.Context, ref name.Reference, kc authn.Keychain) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	desc, err := remote.Head(ref, v.remoteOptions(ctx, kc)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%w: failed to resolve %s: %s", ErrUnavailable, ref, brief(err))
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}

// Signer is who made a signature that verified.
type Signer struct {
	// Name describes the signer to people: "key sha256:…", "subject …
	// from issuer …", "notation subject \"…\", key sha256:…".
	Name string
	// Key names the signer's public key ("sha256:<16 hex>") when a key
	// identifies the signer, whatever the signature's format: cosign's key
	// signatures and Notation's.
	Key string
}

// Result says who signed an image, as an authority required.
type Result struct {
	// Signers are who made the signatures that verified.
	Signers []Signer
	// Formats lists the formats in which a verified signature was found.
	Formats []string
	// Matches are the verified signatures, or the attestations that
	// passed, as a ClusterImagePolicy's spec.policy sees them.
	Matches []Match
	// Configs are an image's config files by platform, when that is what
	// was asked (ConfigFiles), not a verification.
	Configs map[string]json.RawMessage
	// Notes are checks that failed but, at the authority's level, were
	// only to be reported (a Notation permissive level's expired
	// certificate): the image passed, and the decision says so.
	Notes []string
}

// Match is one verified signature or attestation, with the fields
// policy-controller's policy result gives it.
type Match struct {
	// ID identifies the signature: the SHA-256 of the signature and its
	// certificate.
	ID      string `json:"id,omitempty"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	// GitHub Actions claims of a Fulcio certificate.
	GithubWorkflowTrigger string `json:"githubWorkflowTrigger,omitempty"`
	GithubWorkflowSha     string `json:"githubWorkflowSha,omitempty"`
	GithubWorkflowName    string `json:"githubWorkflowName,omitempty"`
	GithubWorkflowRepo    string `json:"githubWorkflowRepo,omitempty"`
	GithubWorkflowRef     string `json:"githubWorkflowRef,omitempty"`
	// Attestation is the name of the required attestation this one
	// satisfied; empty for a signature.
	Attestation   string `json:"-"`
	PredicateType string `json:"predicateType,omitempty"`
	// Digest is the digest of the attestation's envelope.
	Digest string `json:"digest,omitempty"`
}

// matchOf describes a verified signature by its bytes and certificate
// (nil for a key).
func matchOf(sig []byte, cert *x509.Certificate) Match {
	h := sha256.New()
	h.Write(sig)
	m := Match{}
	if cert != nil {
		h.Write(cert.Raw)
		if sum, err := certificate.SummarizeCertificate(cert); err == nil {
			m.Subject, m.Issuer = sum.SubjectAlternativeName, sum.Extensions.Issuer
			m.GithubWorkflowTrigger, m.GithubWorkflowSha = sum.Extensions.GithubWorkflowTrigger, sum.Extensions.GithubWorkflowSHA
			m.GithubWorkflowName, m.GithubWorkflowRepo = sum.Extensions.GithubWorkflowName, sum.Extensions.GithubWorkflowRepository
			m.GithubWorkflowRef = sum.Extensions.GithubWorkflowRef
		}
	}
	m.ID = hex.EncodeToString(h.Sum(nil))
	return m
}

// sigMatch describes a verified legacy signature or attestation.
func sigMatch(s oci.Signature) Match {
	b64, _ := s.Base64Signature()
	cert, _ := s.Cert()
	m := matchOf([]byte(b64), cert)
	if d, err := s.Digest(); err == nil {
		m.Digest = d.String()
	}
	return m
}

// Verify checks one authority for one image digest: cosign signatures for
// a key or keyless authority, Notary Project signatures for a notation
// authority. Static authorities, and notation ones at level skip, are the
// caller's business (they need no registry). The error wraps one of
// ErrNoSignatures, ErrNoMatch, ErrAttestation, ErrUnavailable or ErrConfig
// and is one line.
func (v *Verifier) Verify(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, kc authn.Keychain) (*Result, error) {
	if a.Static != "" || (a.Notation != nil && a.Notation.Skip()) {
		return nil, fmt.Errorf("%w: authority %q is static or at Notation's level skip: it needs no verification", ErrConfig, a.Name)
	}
	if a.Notation != nil {
		return v.verifyNotation(ctx, img, a, kc)
	}
	opts, err := v.checkOpts(ctx, a, kc)
	if err != nil {
		return nil, err
	}
	sigs := img
	if a.Source != nil && a.Source.Repository != "" {
		repo, err := name.NewRepository(a.Source.Repository)
		if err != nil {
			return nil, fmt.Errorf("%w: authority %q: source: %s", ErrConfig, a.Name, err)
		}
		sigs = repo.Digest(img.DigestStr())
	}
	for i := range opts {
		opts[i].sigs = sigs
	}
	if len(a.Attestations) > 0 {
		return v.verifyAttestations(ctx, img, a, opts)
	}
	return v.verifySignatures(ctx, img, a, opts)
}

// checkSet is the cosign options for one identity (keyless) or one key.
type checkSet struct {
	co     *cosign.CheckOpts
	signer Signer // for results when the signature carries no certificate
	// sigs is where Sigstore bundles are looked for: the image's digest in
	// the repository that keeps its signatures.
	sigs name.Digest
}

func (v *Verifier) checkOpts(ctx context.Context, a *policies.CompiledAuthority, kc authn.Keychain) ([]checkSet, error) {
	base := cosign.CheckOpts{
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(v.remoteOptions(ctx, kc)...)},
		IgnoreTlog:         len(a.TLogKeys) == 0,
		MaxWorkers:         4,
	}
	var tsas []root.TimestampingAuthority
	if t := a.TSA; t != nil {
		// Signed timestamps (RFC 3161) are verified, and a certificate is
		// checked at the time they give.
		base.UseSignedTimestamps = true
		base.TSARootCertificates, base.TSAIntermediateCertificates = t.Roots, t.Intermediates
		if len(t.Leaves) > 0 {
			base.TSACertificate = t.Leaves[0]
		}
		leaves := t.Leaves
		if len(leaves) == 0 {
			leaves = []*x509.Certificate{nil} // the timestamp carries its certificate
		}
		for _, r := range t.Roots {
			for _, leaf := range leaves {
				tsas = append(tsas, &root.SigstoreTimestampingAuthority{Root: r, Intermediates: t.Intermediates, Leaf: leaf, ValidityPeriodStart: logValidFrom})
			}
		}
	}
	if src := a.Source; src != nil {
		// Signatures kept in another repository, or under prefixed tags
		// (cosign's COSIGN_REPOSITORY; policy-controller's source).
		if src.Repository != "" {
			repo, err := name.NewRepository(src.Repository)
			if err != nil {
				return nil, fmt.Errorf("%w: authority %q: source: %s", ErrConfig, a.Name, err)
			}
			base.RegistryClientOpts = append(base.RegistryClientOpts, ociremote.WithTargetRepository(repo))
		}
		if src.TagPrefix != "" {
			base.RegistryClientOpts = append(base.RegistryClientOpts, ociremote.WithPrefix(src.TagPrefix))
		}
	}
	var rekorLogs map[string]*root.TransparencyLog
	if len(a.TLogKeys) > 0 {
		keys := cosign.NewTrustedTransparencyLogPubKeys()
		rekorLogs = map[string]*root.TransparencyLog{}
		for _, k := range a.TLogKeys {
			pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k)
			if err != nil {
				return nil, fmt.Errorf("%w: authority %q: Rekor key: %s", ErrConfig, a.Name, err)
			}
			if err := keys.AddTransparencyLogPubKey(pemKey, sigtuf.Active); err != nil {
				return nil, fmt.Errorf("%w: authority %q: Rekor key: %s", ErrConfig, a.Name, err)
			}
			id, err := logID(k)
			if err != nil {
				return nil, fmt.Errorf("%w: authority %q: Rekor key: %s", ErrConfig, a.Name, err)
			}
			rekorLogs[hex.EncodeToString(id)] = &root.TransparencyLog{ID: id, HashFunc: crypto.SHA256, PublicKey: k, SignatureHashFunc: crypto.SHA256, ValidityPeriodStart: logValidFrom}
		}
		base.RekorPubKeys = &keys
	}
	switch {
	case a.Key != nil:
		sv, err := v.keyVerifier(ctx, a)
		if err != nil {
			return nil, err
		}
		co := base
		co.SigVerifier = sv
		tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, tsas, rekorLogs)
		if err != nil {
			return nil, fmt.Errorf("%w: authority %q: %s", ErrConfig, a.Name, err)
		}
		co.TrustedMaterial = tr
		return []checkSet{{co: &co, signer: keySigner(sv, a.Name)}}, nil
	case a.Keyless != nil:
		kl := a.Keyless
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		var cas []root.CertificateAuthority
		for _, r := range kl.Roots {
			roots.AddCert(r)
			cas = append(cas, &root.FulcioCertificateAuthority{Root: r, Intermediates: kl.Intermediates})
		}
		for _, c := range kl.Intermediates {
			inter.AddCert(c)
		}
		var ctLogs map[string]*root.TransparencyLog
		var ctKeys *cosign.TrustedTransparencyLogPubKeys
		if len(kl.SCTKeys) > 0 {
			ctLogs = map[string]*root.TransparencyLog{}
			keys := cosign.NewTrustedTransparencyLogPubKeys()
			for _, k := range kl.SCTKeys {
				pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k)
				if err != nil {
					return nil, fmt.Errorf("%w: authority %q: CT log key: %s", ErrConfig, a.Name, err)
				}
				if err := keys.AddTransparencyLogPubKey(pemKey, sigtuf.Active); err != nil {
					return nil, fmt.Errorf("%w: authority %q: CT log key: %s", ErrConfig, a.Name, err)
				}
				id, err := logID(k)
				if err != nil {
					return nil, fmt.Errorf("%w: authority %q: CT log key: %s", ErrConfig, a.Name, err)
				}
				ctLogs[hex.EncodeToString(id)] = &root.TransparencyLog{ID: id, HashFunc: crypto.SHA256, PublicKey: k, SignatureHashFunc: crypto.SHA256, ValidityPeriodStart: logValidFrom}
			}
			ctKeys = &keys
		}
		tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ctLogs, tsas, rekorLogs)
		if err != nil {
			return nil, fmt.Errorf("%w: authority %q: %s", ErrConfig, a.Name, err)
		}
		var out []checkSet
		for _, id := range kl.Identities {
			co := base
			co.RootCerts, co.IntermediateCerts = roots, inter
			co.IgnoreSCT = kl.IgnoreSCTUnsafe
			co.CTLogPubKeys = ctKeys
			co.TrustedMaterial = tr
			ci := cosign.Identity{Issuer: id.Issuer, Subject: id.Subject}
			if id.IssuerRegExp != nil {
				ci.IssuerRegExp = id.IssuerRegExp.String()
			}
			if id.SubjectRegExp != nil {
				ci.SubjectRegExp = id.SubjectRegExp.String()
			}
			co.Identities = []cosign.Identity{ci}
			out = append(out, checkSet{co: &co, signer: Signer{Name: "keyless"}})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: authority %q has no key or keyless identity", ErrConfig, a.Name)
}

// logValidFrom is when a log key given in a policy became valid: the
// policy names no period, so any time (sigstore-go requires a start).
var logValidFrom = time.Unix(1, 0)

// logID is the RFC 6962 log ID of a key: the SHA-256 of its DER encoding.
func logID(k crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// keySigner is the signer of a key authority: its key, named by the
// SHA-256 of the public key however it was given (PEM or KMS), so that one
// key counts as one signer; the authority's name when the key cannot be
// read.
func keySigner(sv signature.Verifier, authority string) Signer {
	if pub, err := sv.PublicKey(); err == nil {
		if id := keyName(pub); id != "" {
			return Signer{Name: "key " + id, Key: id}
		}
	}
	return Signer{Name: "key " + authority}
}

// keyName is "sha256:<16 hex>" of a public key's DER encoding, or "" for
// a key that cannot be encoded: how signers are named by key, cosign's and
// Notation's alike.
func keyName(pub crypto.PublicKey) string {
	id, err := logID(pub)
	if err != nil {
		return ""
	}
	return "sha256:" + hex.EncodeToString(id)[:16]
}

func (v *Verifier) keyVerifier(ctx context.Context, a *policies.CompiledAuthority) (signature.Verifier, error) {
	if a.Key.KMS == "" {
		sv, err := signature.LoadVerifier(a.Key.Public, a.Key.Hash)
		if err != nil {
			return nil, fmt.Errorf("%w: authority %q: %s", ErrConfig, a.Name, err)
		}
		return sv, nil
	}
	cacheKey := fmt.Sprintf("%s\x00%d", a.Key.KMS, a.Key.Hash)
	v.mu.Lock()
	sv, ok := v.kms[cacheKey]
	v.mu.Unlock()
	if ok {
		return sv, nil
	}
	// The provider is kept for later decisions, and sigstore's providers
	// keep the context they are made with (Azure's and Vault's use it for
	// every verification): not this decision's, which ends with it.
	s, err := kms.Get(context.WithoutCancel(ctx), a.Key.KMS, a.Key.Hash, v.kmsOpts...)
	if err != nil {
		return nil, fmt.Errorf("%w: authority %q: failed to load KMS key: %s", ErrConfig, a.Name, brief(err))
	}
	v.mu.Lock()
	v.kms[cacheKey] = s
	v.mu.Unlock()
	return s, nil
}

// verifySignatures accepts a signature in either format; both are looked
// at. The .sig tag is read once for all identities, the referrers once for
// all of them too.
func (v *Verifier) verifySignatures(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, sets []checkSet) (*Result, error) {
	res := &Result{}
	var reasons []string
	unavailable, found := false, false
	co := legacyOpts(sets)
	co.ClaimVerifier = cosign.SimpleClaimVerifier
	sigs, err := withEachTSALeaf(co, a.TSA, func(co *cosign.CheckOpts) ([]oci.Signature, error) {
		sigs, _, err := cosign.VerifyImageSignatures(ctx, img, co)
		return sigs, err
	})
	switch {
	case err == nil:
		found = true
		res.add(FormatSigTag, describeSigs(sigs, sets[0].signer)...)
		for _, sg := range sigs {
			res.Matches = append(res.Matches, sigMatch(sg))
		}
	case isNoSignatures(err):
	case isNoMatch(err):
		found = true
		reasons = append(reasons, FormatSigTag+": "+brief(err))
	default:
		unavailable = true
		reasons = append(reasons, FormatSigTag+": "+brief(err))
	}
	isSignature := func(st statement) bool { return st.PredicateType == types.CosignSignPredicateType }
	bundles, err := v.fetchBundles(ctx, sets[0].sigs, sets[0].co.RegistryClientOpts, isSignature)
	if err != nil {
		unavailable = true
		reasons = append(reasons, FormatBundle+": "+brief(err))
	}
	if len(bundles) > 0 {
		found = true
	}
	for _, cs := range sets {
		stmts, why := verifyBundles(ctx, img, cs, bundles, isSignature)
		for _, st := range stmts {
			res.add(FormatBundle, st.signer)
			res.Matches = append(res.Matches, st.match)
		}
		reasons = append(reasons, prefixed(FormatBundle, why)...)
	}
	if len(res.Signers) > 0 {
		return res, nil
	}
	switch {
	case unavailable:
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(dedupe(reasons), "; "))
	case !found:
		where := ""
		if sets[0].sigs.Context() != img.Context() {
			where = " in " + sets[0].sigs.Context().Name()
		}
		return nil, fmt.Errorf("%w for %s%s in either format (no .sig tag, no Sigstore bundle referrer)", ErrNoSignatures, img.DigestStr(), where)
	}
	return nil, fmt.Errorf("%w: %s", ErrNoMatch, strings.Join(dedupe(reasons), "; "))
}

// legacyOpts is one set of cosign options for the .sig and .att tags: the
// legacy verifier accepts several identities at once.
func legacyOpts(sets []checkSet) *cosign.CheckOpts {
	co := *sets[0].co
	if co.UseSignedTimestamps {
		// cosign v2.6.5 indexes the verified timestamps of a legacy
		// signature without checking there is one when TrustedMaterial is
		// set: a signature whose timestamp no trusted TSA signed panics in
		// a goroutine of cosign's (the process dies). Without
		// TrustedMaterial it verifies timestamps with the TSA
		// certificates, keys and logs given separately, and fails cleanly
		// (TestClusterImagePolicyTimestamps).
		co.TrustedMaterial = nil
	}
	co.Identities = nil
	for _, cs := range sets {
		co.Identities = append(co.Identities, cs.co.Identities...)
	}
	return &co
}

// withEachTSALeaf runs a legacy verification with each of the authority's
// trusted TSA certificates pinned in turn (cosign's legacy check pins one,
// and refuses a timestamp by any other), returning the first success; a
// failure that is not about the signatures (none found, the registry
// unavailable) is the same for every certificate and returned at once.
func withEachTSALeaf(co *cosign.CheckOpts, tsa *policies.TSA, verify func(*cosign.CheckOpts) ([]oci.Signature, error)) ([]oci.Signature, error) {
	if tsa == nil || len(tsa.Leaves) <= 1 {
		return verify(co)
	}
	var err error
	for _, leaf := range tsa.Leaves {
		c := *co
		c.TSACertificate = leaf
		var sigs []oci.Signature
		if sigs, err = verify(&c); err == nil || !isNoMatch(err) {
			return sigs, err
		}
	}
	return nil, err
}

func prefixed(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + ": " + s
	}
	return out
}

func (r *Result) add(format string, signers ...Signer) {
	if len(signers) == 0 {
		return
	}
	for _, s := range signers {
		if !slices.Contains(r.Signers, s) {
			r.Signers = append(r.Signers, s)
		}
	}
	if !slices.Contains(r.Formats, format) {
		r.Formats = append(r.Formats, format)
	}
}

// dedupe keeps the first of equal reasons, in order.
func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// describeSigs are the signers of verified legacy signatures: a
// certificate's subject and issuer, or fallback (the key) without one.
func describeSigs(sigs []oci.Signature, fallback Signer) []Signer {
	var out []Signer
	for _, s := range sigs {
		cert, err := s.Cert()
		if err != nil || cert == nil {
			out = append(out, fallback)
			continue
		}
		out = append(out, Signer{Name: describeCert(cert)})
	}
	return out
}

func describeCert(cert *x509.Certificate) string {
	sans := cryptoutils.GetSubjectAlternateNames(cert)
	subject := strings.Join(sans, ",")
	ext := cosign.CertExtensions{Cert: cert}
	issuer := ext.GetIssuer()
	return fmt.Sprintf("subject %s from issuer %s", subject, issuer)
}

func isNoSignatures(err error) bool {
	var none *cosign.ErrNoSignaturesFound
	var tag *cosign.ErrImageTagNotFound
	return errors.As(err, &none) || errors.As(err, &tag)
}

func isNoMatch(err error) bool {
	var nm *cosign.ErrNoMatchingSignatures
	var na *cosign.ErrNoMatchingAttestations
	return errors.As(err, &nm) || errors.As(err, &na)
}

// statement is the part of an in-toto statement ward reads.
type statement struct {
	PredicateType string         `json:"predicateType"`
	Predicate     map[string]any `json:"predicate"`
	// raw is the whole statement as signed (CUE and Rego policies judge
	// it).
	raw []byte
}

type verifiedStatement struct {
	statement
	signer Signer
	match  Match
}

// fetchedBundle is a Sigstore bundle read from a referrer, not yet
// verified, with the statement it claims to hold.
type fetchedBundle struct {
	b      *sgbundle.Bundle
	digest string
}

// isBundleCandidate reports whether a referrer may hold a Sigstore
// bundle. Artifact types are not required (cosign v2 wrote bundles with
// the empty-config type or none), but referrers of another known kind
// (SBOMs, Notary signatures) are skipped unread and do not count against
// the limit.
func isBundleCandidate(desc v1.Descriptor) bool {
	at := desc.ArtifactType
	if at == "" || strings.HasPrefix(at, "application/vnd.dev.sigstore.bundle") || at == "application/vnd.oci.empty.v1+json" {
		return true
	}
	for k := range desc.Annotations {
		if strings.HasPrefix(k, "dev.sigstore.bundle.") {
			return true
		}
	}
	return false
}

// fetchBundles reads the referrers of img (the image's digest where its
// signatures are kept; the API, else the tag-schema fallback; listed once
// per decision, see WithDiscovery) and returns the Sigstore bundles whose
// unverified statement want accepts. Selection is repeated on the
// verified statement.
func (v *Verifier) fetchBundles(ctx context.Context, img name.Digest, opts []ociremote.Option, want func(statement) bool) ([]fetchedBundle, error) {
	index, err := referrers(ctx, img, func() (*v1.IndexManifest, error) { return ociremote.Referrers(img, "", opts...) })
	if err != nil {
		return nil, unavailable("failed to list referrers: " + brief(err))
	}
	var out []fetchedBundle
	read := 0
	for _, desc := range index.Manifests {
		if !isBundleCandidate(desc) {
			continue
		}
		if read >= v.maxReferrers {
			break
		}
		read++
		b, err := ociremote.Bundle(img.Context().Digest(desc.Digest.String()), opts...)
		if err != nil {
			if isTransport(err) {
				return out, unavailable(fmt.Sprintf("failed to read referrer %s: %s", desc.Digest, brief(err)))
			}
			continue // not a Sigstore bundle
		}
		st, err := bundleStatement(b)
		if err != nil || !want(st) {
			continue
		}
		out = append(out, fetchedBundle{b: b, digest: desc.Digest.String()})
	}
	return out, nil
}

// verifyBundles verifies fetched bundles against the image digest with one
// identity's options, and returns the statements want accepts, with why
// the others failed.
func verifyBundles(ctx context.Context, img name.Digest, cs checkSet, bundles []fetchedBundle, want func(statement) bool) ([]verifiedStatement, []string) {
	if len(bundles) == 0 {
		return nil, nil
	}
	digestBytes, err := hex.DecodeString(strings.TrimPrefix(img.DigestStr(), "sha256:"))
	if err != nil || !strings.HasPrefix(img.DigestStr(), "sha256:") {
		return nil, []string{"unsupported digest " + img.DigestStr()}
	}
	policy := verify.WithArtifactDigest("sha256", digestBytes)
	var out []verifiedStatement
	var reasons []string
	for _, fb := range bundles {
		vr, err := cosign.VerifyNewBundle(ctx, cs.co, policy, fb.b)
		if err != nil {
			reasons = append(reasons, brief(err))
			continue
		}
		signer := cs.signer
		var cert *x509.Certificate
		if vr.Signature != nil && vr.Signature.Certificate != nil {
			c := vr.Signature.Certificate
			signer = Signer{Name: fmt.Sprintf("subject %s from issuer %s", c.SubjectAlternativeName, c.Extensions.Issuer)}
			if vc, err := fb.b.VerificationContent(); err == nil {
				cert = vc.Certificate()
			}
		}
		// The verified statement is authoritative: select again on it (a
		// message signature has none and is never selected).
		st := statement{}
		if vr.Statement != nil {
			if pm := vr.Statement.GetPredicate(); pm != nil {
				st.Predicate = pm.AsMap()
			}
			st.PredicateType = vr.Statement.GetPredicateType()
			if env, err := fb.b.Envelope(); err == nil && env != nil {
				st.raw, _ = env.RawEnvelope().DecodeB64Payload()
			}
		}
		if !want(st) {
			continue
		}
		m := matchOf(bundleSignature(fb.b), cert)
		m.Digest = fb.digest
		out = append(out, verifiedStatement{statement: st, signer: signer, match: m})
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, reasons
}

// bundleSignature is the signature bytes of a bundle, to identify it.
func bundleSignature(b *sgbundle.Bundle) []byte {
	if env, err := b.Envelope(); err == nil && env != nil {
		if sigs := env.RawEnvelope().Signatures; len(sigs) > 0 {
			return []byte(sigs[0].Sig)
		}
	}
	if sc, err := b.SignatureContent(); err == nil && sc != nil {
		return sc.Signature()
	}
	return nil
}

// bundleStatement reads the unverified statement of a DSSE bundle, to
// select bundles by predicate type before verifying them; a
// message-signature bundle has none. The selection is made again on the
// verified statement.
func bundleStatement(b *sgbundle.Bundle) (statement, error) {
	env, err := b.Envelope()
	if err != nil || env == nil {
		return statement{}, nil // message signature
	}
	var st statement
	raw, err := env.RawEnvelope().DecodeB64Payload()
	if err != nil {
		return statement{}, fmt.Errorf("bundle payload is not base64")
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return statement{}, fmt.Errorf("bundle payload is not an in-toto statement")
	}
	return st, nil
}

// verifyAttestations requires each of the authority's attestations to be
// present (in either format), signed by the authority, and to pass its
// condition.
func (v *Verifier) verifyAttestations(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, sets []checkSet) (*Result, error) {
	var all []verifiedStatement
	var reasons []string
	unavailableErr := false
	co := legacyOpts(sets)
	co.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
	atts, err := withEachTSALeaf(co, a.TSA, func(co *cosign.CheckOpts) ([]oci.Signature, error) {
		atts, _, err := cosign.VerifyImageAttestations(ctx, img, co)
		return atts, err
	})
	switch {
	case err == nil:
		for _, att := range atts {
			st, err := legacyStatement(att)
			if err != nil {
				reasons = append(reasons, err.Error())
				continue
			}
			all = append(all, verifiedStatement{statement: st, signer: describeSigs([]oci.Signature{att}, sets[0].signer)[0], match: sigMatch(att)})
		}
	case isNoSignatures(err):
	case isNoMatch(err):
		reasons = append(reasons, FormatSigTag+": "+brief(err))
	default:
		unavailableErr = true
		reasons = append(reasons, FormatSigTag+": "+brief(err))
	}
	isAttestation := func(st statement) bool {
		return st.PredicateType != "" && st.PredicateType != types.CosignSignPredicateType
	}
	bundles, err := v.fetchBundles(ctx, sets[0].sigs, sets[0].co.RegistryClientOpts, isAttestation)
	if err != nil {
		unavailableErr = true
		reasons = append(reasons, FormatBundle+": "+brief(err))
	}
	for _, cs := range sets {
		stmts, why := verifyBundles(ctx, img, cs, bundles, isAttestation)
		all = append(all, stmts...)
		reasons = append(reasons, prefixed(FormatBundle, why)...)
	}
	res := &Result{}
	for _, want := range a.Attestations {
		ok, why := false, fmt.Sprintf("no verified %s attestation", want.PredicateType)
		// Every statement that passes is recorded: spec.policy sees them
		// all, and each signer may count towards a threshold.
		for _, st := range all {
			if st.PredicateType != want.PredicateType {
				continue
			}
			pass, reason, err := judge(ctx, want, st.statement)
			if err != nil {
				// Out of time is not a verdict: never cached as one.
				return nil, fmt.Errorf("%w: attestation %q: %s", ErrUnavailable, want.Name, err)
			}
			if !pass {
				why = reason
				continue
			}
			ok = true
			res.add("attestation:"+want.Name, st.signer)
			m := st.match
			m.Attestation, m.PredicateType = want.Name, st.PredicateType
			res.Matches = append(res.Matches, m)
		}
		if !ok {
			if unavailableErr {
				return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(dedupe(reasons), "; "))
			}
			if len(reasons) > 0 && len(all) == 0 {
				why += " (" + strings.Join(dedupe(reasons), "; ") + ")"
			}
			return nil, fmt.Errorf("%w: %s", ErrAttestation, why)
		}
	}
	return res, nil
}

// judge applies an attestation's condition or policy to a verified
// statement: whether it passes and, if not, why. The error is set only
// when ctx ended (no verdict).
func judge(ctx context.Context, want policies.CompiledAttestation, st statement) (bool, string, error) {
	switch {
	case want.Condition != nil:
		pass, err := want.Condition.Eval(ctx, map[string]any{"predicate": st.Predicate, "predicateType": st.PredicateType})
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			return false, "", err
		case err != nil:
			return false, fmt.Sprintf("attestation %q: %s", want.Name, brief(err)), nil
		case !pass:
			return false, fmt.Sprintf("attestation %q: condition %s is false", want.Name, want.Condition.Expression()), nil
		}
	case want.Policy != nil:
		err := want.Policy.Eval(ctx, st.raw)
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			return false, "", err
		case err != nil:
			return false, fmt.Sprintf("attestation %q: %s policy: %s", want.Name, want.Policy.Lang(), brief(err)), nil
		}
	}
	return true, "", nil
}

// legacyStatement decodes the in-toto statement of a verified legacy
// attestation (a DSSE envelope in the layer payload).
func legacyStatement(att oci.Signature) (statement, error) {
	p, err := att.Payload()
	if err != nil {
		return statement{}, fmt.Errorf("attestation payload: %s", brief(err))
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(p, &env); err != nil {
		return statement{}, fmt.Errorf("attestation is not a DSSE envelope")
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return statement{}, fmt.Errorf("attestation payload is not base64")
	}
	var st statement
	if err := json.Unmarshal(raw, &st); err != nil {
		return statement{}, fmt.Errorf("attestation is not an in-toto statement")
	}
	st.raw = raw
	return st, nil
}

// brief is an error as one line of bounded length, for reasons that end up
// in admission responses.
func brief(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	const max = 300
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
