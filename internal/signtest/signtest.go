// Package signtest signs container images in tests, the way cosign does:
// legacy ".sig"/".att" tags and Sigstore bundles stored as OCI referrers,
// with static keys or keyless certificates from sigstore-go's virtual
// Sigstore. It also runs go-containerregistry's in-process registry.
package signtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"ward.dev/ward/internal/imagesign"
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
	d, err := imagesign.PushRandomImage(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
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
	return KeyFrom(t, priv)
}

// KeyFrom makes a cosign-style key of an existing ECDSA key (a Notation
// leaf's, to sign with one key in both formats).
func KeyFrom(t testing.TB, priv *ecdsa.PrivateKey) *Key {
	t.Helper()
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
	check(t, imagesign.SignLegacy(d, d, k.Signer, opts...))
}

// SignLegacyIn attaches the signature to the "<prefix>sha256-<hex>.sig"
// tag of another repository (cosign with COSIGN_REPOSITORY).
func SignLegacyIn(t testing.TB, d name.Digest, k *Key, target, prefix string, opts ...remote.Option) {
	t.Helper()
	repo, err := name.NewRepository(target)
	check(t, err)
	check(t, imagesign.SignLegacyIn(d, k.Signer, repo, prefix, opts...))
}

// SignLegacyFor signs the payload naming claimed but attaches the signature
// to d's .sig tag: the copied-signature attack.
func SignLegacyFor(t testing.TB, d, claimed name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	check(t, imagesign.SignLegacy(d, claimed, k.Signer, opts...))
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Statement is an in-toto v1 statement about d.
func Statement(t testing.TB, d name.Digest, predicateType string, predicate any) []byte {
	t.Helper()
	b, err := imagesign.Statement(d, predicateType, predicate)
	check(t, err)
	return b
}

// AttestLegacy attaches a DSSE-signed in-toto statement to the ".att" tag.
func AttestLegacy(t testing.TB, d name.Digest, k *Key, predicateType string, predicate any, opts ...remote.Option) {
	t.Helper()
	check(t, imagesign.AttestLegacy(d, k.Signer, predicateType, predicate, opts...))
}

// SignBundle stores a Sigstore bundle signing d as a referrer, what the
// cosign v3 CLI writes by default (a DSSE envelope over an in-toto
// statement of type https://sigstore.dev/cosign/sign/v1).
func SignBundle(t testing.TB, d name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	check(t, imagesign.SignBundle(d, d, k.Signer, k.Public, "", nil, opts...))
}

// AttestBundle stores a Sigstore bundle with a DSSE-signed in-toto
// statement about d as a referrer.
func AttestBundle(t testing.TB, d name.Digest, k *Key, predicateType string, predicate any, opts ...remote.Option) {
	t.Helper()
	check(t, imagesign.SignBundle(d, d, k.Signer, k.Public, predicateType, predicate, opts...))
}

// SignBundleFor stores, as a referrer of d, a bundle whose statement names
// claimed: the copied-signature attack in the bundle format.
func SignBundleFor(t testing.TB, d, claimed name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	check(t, imagesign.SignBundle(d, claimed, k.Signer, k.Public, "", nil, opts...))
}
