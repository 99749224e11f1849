package imageverify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

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
// registry code does (the response bound applies too).
const maxNotationEnvelope = 32 << 20

// revocationValidators check certificates' revocation (OCSP, else CRL,
// for certificates that name a responder or distribution point) with
// ward's bounded transport, for the code-signing chain and the
// timestamping chain.
type revocationValidators struct {
	codeSigning, timestamping revocation.Validator
}

func newRevocationValidators(rt http.RoundTripper) (revocationValidators, error) {
	client := &http.Client{Transport: rt}
	fetcher, err := crl.NewHTTPFetcher(client)
	if err != nil {
		return revocationValidators{}, err
	}
	var out revocationValidators
	for _, p := range []struct {
		purpose purpose.Purpose
		v       *revocation.Validator
	}{{purpose.CodeSigning, &out.codeSigning}, {purpose.Timestamping, &out.timestamping}} {
		if *p.v, err = revocation.NewWithOptions(revocation.Options{OCSPHTTPClient: client, CRLFetcher: fetcher, CertChainPurpose: p.purpose}); err != nil {
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

// verifyNotation checks the image's Notary Project signatures against a
// notation authority: each signature manifest among the image's referrers
// (at most maxReferrers of them) is read, its envelope verified by
// notation-go under the authority's trust policy. Level skip verifies
// nothing.
func (v *Verifier) verifyNotation(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, kc authn.Keychain) (*Result, error) {
	n := a.Notation
	if n.Skip() {
		return &Result{Signers: []string{"notation level skip (" + a.Name + ")"}}, nil
	}
	if v.revocation == nil {
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
	res := &Result{}
	var reasons []string
	found := 0
	for _, desc := range index.Manifests {
		if desc.ArtifactType != NotationArtifactType {
			continue
		}
		if found >= v.maxReferrers {
			break
		}
		found++
		blob, mediaType, subject, err := v.notationEnvelope(img, desc, opts)
		switch {
		case isTransport(err):
			return nil, fmt.Errorf("%w: failed to read Notation signature %s: %s", ErrUnavailable, desc.Digest, brief(err))
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("%s: %s", shortDigest(desc.Digest.String()), brief(err)))
			continue
		}
		outcome, err := nv.Verify(ctx, subject, blob, notation.VerifierVerifyOptions{
			ArtifactReference:  img.Context().Name() + "@" + img.DigestStr(),
			SignatureMediaType: mediaType,
		})
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.Canceled) {
				return nil, fmt.Errorf("%w: out of time verifying Notation signatures: %s", ErrUnavailable, brief(err))
			}
			reasons = append(reasons, fmt.Sprintf("%s: %s", shortDigest(desc.Digest.String()), brief(err)))
			continue
		}
		signer, match := notationSigner(outcome, blob)
		match.Digest = desc.Digest.String()
		res.add(FormatNotation, signer)
		res.Matches = append(res.Matches, match)
	}
	if len(res.Signers) > 0 {
		return res, nil
	}
	if found == 0 {
		return nil, noSignatures(fmt.Sprintf("no Notation signature for %s (no referrer of type %s)", img.DigestStr(), NotationArtifactType))
	}
	return nil, noMatch(fmt.Sprintf("no Notation signature by a trusted identity of trust store %s (level %s): %s",
		n.StoreID, n.Level, strings.Join(dedupe(reasons), "; ")))
}

// notationEnvelope reads a Notation signature manifest and its one
// envelope blob, checking the manifest names the image as its subject;
// the subject is returned as the descriptor the signature must cover.
func (v *Verifier) notationEnvelope(img name.Digest, desc v1.Descriptor, opts []remote.Option) ([]byte, string, ocispec.Descriptor, error) {
	got, err := remote.Get(img.Context().Digest(desc.Digest.String()), opts...)
	if err != nil {
		return nil, "", ocispec.Descriptor{}, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(got.Manifest, &m); err != nil {
		return nil, "", ocispec.Descriptor{}, errors.New("signature manifest is not an OCI image manifest")
	}
	switch {
	case m.Config.MediaType != NotationArtifactType && string(m.ArtifactType) != NotationArtifactType:
		return nil, "", ocispec.Descriptor{}, fmt.Errorf("manifest is not a Notation signature (config %s)", m.Config.MediaType)
	case m.Subject == nil || m.Subject.Digest.String() != img.DigestStr():
		return nil, "", ocispec.Descriptor{}, errors.New("signature manifest's subject is not this image")
	case len(m.Layers) != 1:
		return nil, "", ocispec.Descriptor{}, fmt.Errorf("signature manifest has %d layers, want one envelope", len(m.Layers))
	case m.Layers[0].Size > maxNotationEnvelope || m.Layers[0].Size < 0:
		return nil, "", ocispec.Descriptor{}, fmt.Errorf("signature envelope of %d bytes is over the limit of %d", m.Layers[0].Size, maxNotationEnvelope)
	}
	layer := m.Layers[0]
	mediaType := string(layer.MediaType)
	if mediaType != jws.MediaTypeEnvelope && mediaType != cose.MediaTypeEnvelope {
		return nil, "", ocispec.Descriptor{}, fmt.Errorf("signature envelope type %q is neither JWS (%s) nor COSE (%s)", mediaType, jws.MediaTypeEnvelope, cose.MediaTypeEnvelope)
	}
	l, err := remote.Layer(img.Context().Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, "", ocispec.Descriptor{}, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, "", ocispec.Descriptor{}, err
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, layer.Size+1))
	if err != nil {
		return nil, "", ocispec.Descriptor{}, err
	}
	if int64(len(blob)) != layer.Size || digest.FromBytes(blob).String() != layer.Digest.String() {
		return nil, "", ocispec.Descriptor{}, errors.New("signature envelope does not match its digest")
	}
	subject := ocispec.Descriptor{MediaType: string(m.Subject.MediaType), Digest: digest.Digest(m.Subject.Digest.String()), Size: m.Subject.Size}
	return blob, mediaType, subject, nil
}

// notationSigner names the signer of a verified Notation signature by its
// leaf certificate: its subject and its public key, named as a key
// authority names keys, so that one key counts as one signer whether it
// signs with cosign or Notation.
func notationSigner(o *notation.VerificationOutcome, blob []byte) (string, Match) {
	var leaf *x509.Certificate
	if o.EnvelopeContent != nil && len(o.EnvelopeContent.SignerInfo.CertificateChain) > 0 {
		leaf = o.EnvelopeContent.SignerInfo.CertificateChain[0]
	}
	if leaf == nil {
		return "notation (no certificate)", matchOf(blob, nil)
	}
	key := ""
	if id, err := logID(leaf.PublicKey); err == nil {
		key = fmt.Sprintf("%x", id)[:16]
	}
	signer := fmt.Sprintf("notation subject %q, key sha256:%s", leaf.Subject.String(), key)
	if o.VerificationLevel != nil && o.VerificationLevel.Enforcement[trustpolicy.TypeAuthenticity] != trustpolicy.ActionEnforce {
		signer += " (authenticity not enforced: level " + o.VerificationLevel.Name + ")"
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
