// Package imagesign pushes images and signs them the way cosign does:
// legacy ".sig"/".att" tags, and Sigstore bundles (DSSE over an in-toto
// statement) stored as OCI referrers, cosign v3's default. It serves the
// demo and the tests; ward itself only verifies.
package imagesign

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// PushRandomImage pushes a small random image to ref (a tag) and returns
// its digest reference.
func PushRandomImage(ref string, opts ...remote.Option) (name.Digest, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := random.Image(256, 1)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("failed to push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(d.String()), nil
}

// SignLegacy attaches a signature over claimed's simple-signing payload to
// d's "sha256-<hex>.sig" tag (claimed is d, unless a test forges a copy).
func SignLegacy(d, claimed name.Digest, s signature.Signer, opts ...remote.Option) error {
	return signLegacy(d, claimed, s, nil, opts...)
}

// SignLegacyIn attaches a signature over d's simple-signing payload to
// the "<prefix>sha256-<hex>.sig" tag of another repository (what cosign
// writes with COSIGN_REPOSITORY set).
func SignLegacyIn(d name.Digest, s signature.Signer, target name.Repository, prefix string, opts ...remote.Option) error {
	return signLegacy(d, d, s, []ociremote.Option{ociremote.WithTargetRepository(target), ociremote.WithPrefix(prefix)}, opts...)
}

func signLegacy(d, claimed name.Digest, s signature.Signer, where []ociremote.Option, opts ...remote.Option) error {
	p, err := (&payload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		return err
	}
	sig, err := s.SignMessage(bytes.NewReader(p))
	if err != nil {
		return err
	}
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		return err
	}
	return attach(d, func(se oci.SignedEntity) (oci.SignedEntity, error) { return mutate.AttachSignatureToEntity(se, ociSig) }, ociremote.WriteSignatures, where, opts...)
}

// AttachSignature writes a prepared signature to d's .sig tag.
func AttachSignature(d name.Digest, sig oci.Signature, opts ...remote.Option) error {
	return attach(d, func(se oci.SignedEntity) (oci.SignedEntity, error) { return mutate.AttachSignatureToEntity(se, sig) }, ociremote.WriteSignatures, nil, opts...)
}

func attach(d name.Digest, add func(oci.SignedEntity) (oci.SignedEntity, error), write func(name.Repository, oci.SignedEntity, ...ociremote.Option) error, where []ociremote.Option, opts ...remote.Option) error {
	ro := append([]ociremote.Option{ociremote.WithRemoteOptions(opts...)}, where...)
	se, err := ociremote.SignedEntity(d, ro...)
	if err != nil {
		return err
	}
	if se, err = add(se); err != nil {
		return err
	}
	return write(d.Repository, se, ro...)
}

// Statement is an in-toto v1 statement about d.
func Statement(d name.Digest, predicateType string, predicate any) ([]byte, error) {
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": d.Repository.Name(), "digest": map[string]string{"sha256": strings.TrimPrefix(d.DigestStr(), "sha256:")}}},
		"predicateType": predicateType,
	}
	if predicate != nil {
		st["predicate"] = predicate
	}
	return json.Marshal(st)
}

// AttestLegacy attaches a DSSE-signed in-toto statement to d's .att tag.
func AttestLegacy(d name.Digest, s signature.Signer, predicateType string, predicate any, opts ...remote.Option) error {
	st, err := Statement(d, predicateType, predicate)
	if err != nil {
		return err
	}
	env, err := sigdsse.WrapSigner(s, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return err
	}
	att, err := static.NewAttestation(env)
	if err != nil {
		return err
	}
	return attach(d, func(se oci.SignedEntity) (oci.SignedEntity, error) { return mutate.AttachAttestationToEntity(se, att) }, ociremote.WriteAttestations, nil, opts...)
}

// SignBundle stores, as a referrer of d, a Sigstore bundle with a
// DSSE-signed statement about claimed: predicate type
// https://sigstore.dev/cosign/sign/v1 is a signature (what cosign v3
// writes), any other an attestation.
func SignBundle(d, claimed name.Digest, s signature.Signer, pub crypto.PublicKey, predicateType string, predicate any, opts ...remote.Option) error {
	if predicateType == "" {
		predicateType = types.CosignSignPredicateType
	}
	st, err := Statement(claimed, predicateType, predicate)
	if err != nil {
		return err
	}
	env, err := sigdsse.WrapSigner(s, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		return err
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return err
	}
	b, err := cbundle.MakeNewBundle(pub, nil, st, env, pemKey, nil)
	if err != nil {
		return err
	}
	return ociremote.WriteAttestationNewBundleFormat(d, b, predicateType, ociremote.WithRemoteOptions(opts...))
}
