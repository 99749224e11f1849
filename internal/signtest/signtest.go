// Package signtest signs container images in tests, the way cosign does:
// legacy ".sig"/".att" tags and Sigstore bundles stored as OCI referrers,
// with static keys or keyless certificates from sigstore-go's virtual
// Sigstore. It also runs go-containerregistry's in-process registry.
package signtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
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

// Registry starts go-containerregistry's in-process registry, with the OCI
// 1.1 referrers API when referrers is true, and returns its host:port.
func Registry(t testing.TB, referrers bool) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrers)))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// PushImage pushes a small random image to ref (a tag) and returns its
// digest reference.
func PushImage(t testing.TB, ref string, opts ...remote.Option) name.Digest {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(d.String())
}

// Key is a cosign-style ECDSA P-256 key pair.
type Key struct {
	Signer signature.SignerVerifier
	Public crypto.PublicKey
	PEM    string
}

// NewKey makes a fresh key pair.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Signer: sv, Public: priv.Public(), PEM: string(pemKey)}
}

// SignLegacy attaches a cosign signature over d's simple-signing payload
// to the "sha256-<hex>.sig" tag (what `cosign sign --tlog-upload=false`
// writes with cosign v2).
func SignLegacy(t testing.TB, d name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	signLegacyPayload(t, d, d, k, nil, opts...)
}

// SignLegacyFor signs the payload naming claimed but attaches the signature
// to d's .sig tag: the copied-signature attack.
func SignLegacyFor(t testing.TB, d, claimed name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	signLegacyPayload(t, d, claimed, k, nil, opts...)
}

func signLegacyPayload(t testing.TB, d, claimed name.Digest, k *Key, sopts []static.Option, opts ...remote.Option) {
	t.Helper()
	p, err := (&payload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig), sopts...)
	if err != nil {
		t.Fatal(err)
	}
	attach(t, d, func(se *seHolder) error {
		var err error
		se.se, err = mutate.AttachSignatureToEntity(se.se, ociSig)
		return err
	}, ociremote.WriteSignatures, opts...)
}

type seHolder struct{ se oci.SignedEntity }

func attach(t testing.TB, d name.Digest, add func(*seHolder) error, write func(name.Repository, oci.SignedEntity, ...ociremote.Option) error, opts ...remote.Option) {
	t.Helper()
	ro := []ociremote.Option{ociremote.WithRemoteOptions(opts...)}
	se, err := ociremote.SignedEntity(d, ro...)
	if err != nil {
		t.Fatal(err)
	}
	h := &seHolder{se: se}
	if err := add(h); err != nil {
		t.Fatal(err)
	}
	if err := write(d.Repository, h.se, ro...); err != nil {
		t.Fatal(err)
	}
}

// Statement is an in-toto v1 statement about d.
func Statement(t testing.TB, d name.Digest, predicateType string, predicate any) []byte {
	t.Helper()
	hexDigest := strings.TrimPrefix(d.DigestStr(), "sha256:")
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": d.Repository.Name(), "digest": map[string]string{"sha256": hexDigest}}},
		"predicateType": predicateType,
	}
	if predicate != nil {
		st["predicate"] = predicate
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AttestLegacy attaches a DSSE-signed in-toto statement to the ".att" tag.
func AttestLegacy(t testing.TB, d name.Digest, k *Key, predicateType string, predicate any, opts ...remote.Option) {
	t.Helper()
	env, err := sigdsse.WrapSigner(k.Signer, types.IntotoPayloadType).SignMessage(bytes.NewReader(Statement(t, d, predicateType, predicate)))
	if err != nil {
		t.Fatal(err)
	}
	att, err := static.NewAttestation(env)
	if err != nil {
		t.Fatal(err)
	}
	attach(t, d, func(se *seHolder) error {
		var err error
		se.se, err = mutate.AttachAttestationToEntity(se.se, att)
		return err
	}, ociremote.WriteAttestations, opts...)
}

// SignBundle stores a Sigstore bundle signing d as a referrer, what the
// cosign v3 CLI writes by default (a DSSE envelope over an in-toto
// statement of type https://sigstore.dev/cosign/sign/v1).
func SignBundle(t testing.TB, d name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	AttestBundle(t, d, k, types.CosignSignPredicateType, nil, opts...)
}

// AttestBundle stores a Sigstore bundle with a DSSE-signed in-toto
// statement about d as a referrer.
func AttestBundle(t testing.TB, d name.Digest, k *Key, predicateType string, predicate any, opts ...remote.Option) {
	t.Helper()
	attestBundle(t, d, d, k, predicateType, predicate, opts...)
}

// SignBundleFor stores, as a referrer of d, a bundle whose statement names
// claimed: the copied-signature attack in the bundle format.
func SignBundleFor(t testing.TB, d, claimed name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	attestBundle(t, d, claimed, k, types.CosignSignPredicateType, nil, opts...)
}

func attestBundle(t testing.TB, d, claimed name.Digest, k *Key, predicateType string, predicate any, opts ...remote.Option) {
	t.Helper()
	st := Statement(t, claimed, predicateType, predicate)
	env, err := sigdsse.WrapSigner(k.Signer, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cbundle.MakeNewBundle(k.Public, nil, st, env, []byte(k.PEM), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteAttestationNewBundleFormat(d, b, predicateType, ociremote.WithRemoteOptions(opts...)); err != nil {
		t.Fatal(err)
	}
}
