package imageverify

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/notaryproject/notation-core-go/revocation"
	"github.com/notaryproject/notation-core-go/revocation/crl"
	"github.com/notaryproject/notation-core-go/revocation/purpose"
	"github.com/notaryproject/notation-core-go/signature/cose"
	"github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-go"
	notationverifier "github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"ward.dev/ward/policies"
)

// FormatNotation is a Notary Project signature stored as an OCI referrer
// of the image (the referrers API, or the referrers tag schema).
const FormatNotation = "notation"

// NotationArtifactType is the artifact type of a Notary Project
// signature manifest (its config's media type).
const NotationArtifactType = "application/vnd.cncf.notary.signature"

// maxNotationEnvelope bounds a signature envelope as notation-go's own
// registry code does; the response bound (4 MiB by default) applies
// first when it is lower.
const maxNotationEnvelope = 32 << 20

// Revocation checks' bounds, notation-core-go's own: an OCSP request takes
// at most 2 s, a CRL download 5 s, and a CRL is at most 32 MiB.
const (
	ocspTimeout = 2 * time.Second
	crlTimeout  = 5 * time.Second
	maxCRLBytes = 32 << 20
)

// revocationValidators check certificates' revocation (OCSP, else CRL,
// for certificates that name a responder or distribution point) for the
// code-signing chain and the timestamping chain, with bounded clients that
// follow no redirects.
type revocationValidators struct {
	codeSigning, timestamping revocation.Validator
}

func newRevocationValidators(rt http.RoundTripper) (revocationValidators, error) {
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ocspClient := &http.Client{Transport: rt, Timeout: ocspTimeout, CheckRedirect: noRedirects}
	fetcher, err := crl.NewHTTPFetcher(&http.Client{Transport: rt, Timeout: crlTimeout, CheckRedirect: noRedirects})
	if err != nil {
		return revocationValidators{}, err
	}
	var out revocationValidators
	for _, p := range []struct {
		purpose purpose.Purpose
		v       *revocation.Validator
	}{{purpose.CodeSigning, &out.codeSigning}, {purpose.Timestamping, &out.timestamping}} {
		if *p.v, err = revocation.NewWithOptions(revocation.Options{OCSPHTTPClient: ocspClient, CRLFetcher: fetcher, CertChainPurpose: p.purpose}); err != nil {
			return revocationValidators{}, err
		}
	}
	return out, nil
}

// notationStore is an authority's trust store, in memory: its
// certificates were checked when the policy compiled.
type notationStore map[string][]*x509.Certificate

// GetCertificates returns the certificates of one store type; every
// store of an authority is named "ward".
func (s notationStore) GetCertificates(_ context.Context, typ truststore.Type, _ string) ([]*x509.Certificate, error) {
	certs := s[string(typ)]
	if len(certs) == 0 {
		return nil, fmt.Errorf("the trust store has no %s certificates", typ)
	}
	return certs, nil
}

// notationReference is the artifact reference given to notation-go. Its
// trust policy has the one scope "*", so the reference only has to be
// well formed (an IPv6 registry's name would not be, to notation-go).
const notationReference = "registry.ward.invalid/image@"

// verifyNotation checks the image's Notary Project signatures against a
// notation authority: each signature manifest among the image's referrers
// (at most maxReferrers of them) is read, its envelope verified by
// notation-go under the authority's trust policy, against the image's
// descriptor as the registry gives it.
func (v *Verifier) verifyNotation(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, kc authn.Keychain) (*Result, error) {
	n := a.Notation
	switch {
	case n.SecretRef != "":
		return nil, fmt.Errorf("%w: authority %q: its %s trust store is in Secret %s, which was not read", ErrConfig, a.Name, n.SecretStore, n.SecretRef)
	case v.revocation == nil:
		return nil, fmt.Errorf("%w: authority %q: no revocation checker", ErrConfig, a.Name)
	}
	nv, err := notationverifier.NewWithOptions(n.Policy, notationStore(n.Stores), nil, notationverifier.VerifierOptions{
		RevocationCodeSigningValidator:  v.revocation.codeSigning,
		RevocationTimestampingValidator: v.revocation.timestamping,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: authority %q: %s", ErrConfig, a.Name, brief(err))
	}
	opts := v.remoteOptions(ctx, kc)
	index, err := referrers(ctx, img, func() (*v1.IndexManifest, error) {
		return ociremote.Referrers(img, "", ociremote.WithRemoteOptions(opts...))
	})
	if err != nil {
		return nil, fmt.Errorf("%w: failed to list referrers of %s: %s", ErrUnavailable, img.DigestStr(), brief(err))
	}
	var candidates []v1.Descriptor
	for _, desc := range index.Manifests {
		if desc.ArtifactType == NotationArtifactType {
			candidates = append(candidates, desc)
		}
	}
	if len(candidates) == 0 {
		return nil, noSignatures(fmt.Sprintf("no Notation signature for %s (no referrer of type %s)", img.DigestStr(), NotationArtifactType))
	}
	// The descriptor a signature must cover, as the registry gives it:
	// what notation verify resolves and compares with the signed payload.
	head, err := remote.Head(img, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: failed to read the descriptor of %s: %s", ErrUnavailable, img.DigestStr(), brief(err))
	}
	target := ocispec.Descriptor{MediaType: string(head.MediaType), Digest: digest.Digest(img.DigestStr()), Size: head.Size}
	limit := min(int64(maxNotationEnvelope), v.maxBytes)
	res := &Result{}
	var refused, unreachable reasons
	for i, desc := range candidates {
		if i == v.maxReferrers {
			refused.add("", fmt.Sprintf("%d more Notation signatures not read (at most %d are)", len(candidates)-i, v.maxReferrers))
			break
		}
		blob, mediaType, err := v.notationEnvelope(img, desc, limit, opts)
		switch {
		case err != nil && isTransport(err) && !isNotFound(err):
			unreachable.add(desc.Digest.String(), brief(err))
			continue
		case err != nil:
			refused.add(desc.Digest.String(), brief(err))
			continue
		}
		outcome, err := nv.Verify(ctx, target, blob, notation.VerifierVerifyOptions{
			ArtifactReference:  notationReference + img.DigestStr(),
			SignatureMediaType: mediaType,
		})
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil, fmt.Errorf("%w: out of time verifying Notation signatures: %s", ErrUnavailable, brief(err))
			case revocationUnknown(outcome):
				// An OCSP responder or CRL that could not be read is no
				// verdict on the signature: not cached as one.
				unreachable.add(desc.Digest.String(), brief(err))
			default:
				refused.add(desc.Digest.String(), brief(err))
			}
			continue
		}
		signer, match := notationSigner(n, outcome, blob)
		match.Digest = desc.Digest.String()
		res.add(FormatNotation, signer)
		res.Matches = append(res.Matches, match)
		res.Notes = append(res.Notes, loggedFailures(n, outcome)...)
	}
	switch {
	case len(res.Signers) > 0:
		res.Notes = dedupe(res.Notes)
		return res, nil
	case len(unreachable) > 0:
		return nil, fmt.Errorf("%w: Notation signatures of %s could not be checked: %s", ErrUnavailable, img.DigestStr(), append(unreachable, refused...))
	}
	return nil, noMatch(fmt.Sprintf("no Notation signature by a trusted identity of trust store %s (level %s): %s", n.StoreID, n.Level, refused))
}

// reasons are why signatures were not accepted, each with the digest of
// its signature manifest ("" for none).
type reasons []struct{ digest, why string }

func (r *reasons) add(digest, why string) {
	*r = append(*r, struct{ digest, why string }{digest, why})
}

// String lists each distinct reason once, with the signatures it applies
// to.
func (r reasons) String() string {
	var order []string
	digests := map[string][]string{}
	for _, x := range r {
		if _, ok := digests[x.why]; !ok {
			order = append(order, x.why)
		}
		if x.digest != "" {
			digests[x.why] = append(digests[x.why], shortDigest(x.digest))
		}
	}
	parts := make([]string, len(order))
	for i, why := range order {
		parts[i] = why
		if d := digests[why]; len(d) > 0 {
			parts[i] = strings.Join(d, ", ") + ": " + why
		}
	}
	return strings.Join(parts, "; ")
}

// revocationUnknown reports whether verification failed only because a
// certificate's revocation status could not be learnt (its OCSP responder
// or CRL unreachable), not because a certificate was revoked.
func revocationUnknown(o *notation.VerificationOutcome) bool {
	if o == nil {
		return false
	}
	for _, r := range o.VerificationResults {
		if r.Error == nil || r.Action != trustpolicy.ActionEnforce {
			continue
		}
		return r.Type == trustpolicy.TypeRevocation && !strings.Contains(r.Error.Error(), "is revoked")
	}
	return false
}

// loggedFailures are the checks that failed at action log: admitted, as
// the level says, and reported.
func loggedFailures(n *policies.Notation, o *notation.VerificationOutcome) []string {
	var out []string
	for _, r := range o.VerificationResults {
		if r.Error != nil && r.Action == trustpolicy.ActionLog {
			out = append(out, fmt.Sprintf("Notation %s check failed, admitted at level %s: %s", r.Type, n.Level, brief(r.Error)))
		}
	}
	return out
}

// notationEnvelope reads a Notation signature manifest and its one
// envelope blob (at most limit bytes), checking that the manifest names
// the image as its subject.
func (v *Verifier) notationEnvelope(img name.Digest, desc v1.Descriptor, limit int64, opts []remote.Option) ([]byte, string, error) {
	got, err := remote.Get(img.Context().Digest(desc.Digest.String()), opts...)
	if err != nil {
		return nil, "", err
	}
	var m v1.Manifest
	if err := json.Unmarshal(got.Manifest, &m); err != nil {
		return nil, "", errors.New("signature manifest is not an OCI image manifest")
	}
	switch {
	case m.Config.MediaType != NotationArtifactType && string(m.ArtifactType) != NotationArtifactType:
		return nil, "", fmt.Errorf("manifest is not a Notation signature (config %s)", m.Config.MediaType)
	case m.Subject == nil || m.Subject.Digest.String() != img.DigestStr():
		return nil, "", errors.New("signature manifest's subject is not this image")
	case len(m.Layers) != 1:
		return nil, "", fmt.Errorf("signature manifest has %d layers, want one envelope", len(m.Layers))
	case m.Layers[0].Size > limit || m.Layers[0].Size < 0:
		return nil, "", fmt.Errorf("signature envelope of %d bytes is over the limit of %d", m.Layers[0].Size, limit)
	}
	layer := m.Layers[0]
	mediaType := string(layer.MediaType)
	if mediaType != jws.MediaTypeEnvelope && mediaType != cose.MediaTypeEnvelope {
		return nil, "", fmt.Errorf("signature envelope type %q is neither JWS (%s) nor COSE (%s)", mediaType, jws.MediaTypeEnvelope, cose.MediaTypeEnvelope)
	}
	l, err := remote.Layer(img.Context().Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, "", err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, layer.Size+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(blob)) != layer.Size || digest.FromBytes(blob).String() != layer.Digest.String() {
		return nil, "", errors.New("signature envelope does not match its digest")
	}
	return blob, mediaType, nil
}

// notationSigner names the signer of a verified Notation signature by its
// leaf certificate: its subject and its public key, named as a key
// authority names keys, so that one key counts as one signer whether it
// signs with cosign or Notation. The key identifies the signer only where
// the level enforces authenticity.
func notationSigner(n *policies.Notation, o *notation.VerificationOutcome, blob []byte) (Signer, Match) {
	var leaf *x509.Certificate
	if o.EnvelopeContent != nil && len(o.EnvelopeContent.SignerInfo.CertificateChain) > 0 {
		leaf = o.EnvelopeContent.SignerInfo.CertificateChain[0]
	}
	if leaf == nil {
		return Signer{Name: "notation (no certificate)"}, matchOf(blob, nil)
	}
	key := keyName(leaf.PublicKey)
	signer := Signer{Name: fmt.Sprintf("notation subject %q, key %s", leaf.Subject.String(), cmp.Or(key, "unknown"))}
	if n.AuthenticityEnforced {
		signer.Key = key
	} else {
		signer.Name += " (authenticity not enforced: level " + n.Level + ")"
	}
	m := matchOf(append(slices.Clone(blob), leaf.Raw...), nil)
	m.Subject, m.Issuer = leaf.Subject.String(), leaf.Issuer.String()
	return signer, m
}

// shortDigest is a digest cut for messages.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
