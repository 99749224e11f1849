package signtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/rekor/pkg/generated/models"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"ward.dev/ward/internal/imagesign"
)

// Sigstore is sigstore-go's virtual Sigstore: a Fulcio-like CA issuing
// short-lived certificates for OIDC identities and a Rekor-like log key.
type Sigstore struct {
	VS *ca.VirtualSigstore
	// CAPEM holds the Fulcio root and intermediate certificates.
	CAPEM string
	// RekorPEM is the log's public key.
	RekorPEM string
	// TSAPEM is the timestamp authority's chain: leaf, intermediates, root.
	TSAPEM string
}

// NewSigstore starts a virtual Sigstore.
func NewSigstore(t testing.TB) *Sigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	fulcio := vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	var caPEM []byte
	for _, c := range append([]*x509.Certificate{fulcio.Root}, fulcio.Intermediates...) {
		p, err := cryptoutils.MarshalCertificateToPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		caPEM = append(caPEM, p...)
	}
	var rekorPEM []byte
	for _, l := range vs.RekorLogs() {
		if rekorPEM, err = cryptoutils.MarshalPublicKeyToPEM(l.PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	tsa := vs.TimestampingAuthorities()[0].(*root.SigstoreTimestampingAuthority)
	var tsaPEM []byte
	for _, c := range append(append([]*x509.Certificate{tsa.Leaf}, tsa.Intermediates...), tsa.Root) {
		p, err := cryptoutils.MarshalCertificateToPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		tsaPEM = append(tsaPEM, p...)
	}
	return &Sigstore{VS: vs, CAPEM: string(caPEM), RekorPEM: string(rekorPEM), TSAPEM: string(tsaPEM)}
}

// timestamp is an RFC 3161 timestamp of the virtual TSA over sig.
func (s *Sigstore) timestamp(t testing.TB, sig []byte) static.Option {
	t.Helper()
	ts, err := s.VS.TimestampResponse(sig)
	if err != nil {
		t.Fatal(err)
	}
	return static.WithRFC3161Timestamp(&cbundle.RFC3161Timestamp{SignedRFC3161Timestamp: ts})
}

// SignLegacyTimestamped signs d keylessly in the legacy format with an
// RFC 3161 timestamp from the virtual TSA and no log entry.
func (s *Sigstore) SignLegacyTimestamped(t testing.TB, d name.Digest, identity, issuer string, opts ...remote.Option) {
	t.Helper()
	p, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ent, err := s.VS.Sign(identity, issuer, p)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	certPEM, _ := cryptoutils.MarshalCertificateToPEM(vc.(*sgbundle.Certificate).Certificate())
	sc, _ := ent.SignatureContent()
	sig := sc.(*sgbundle.MessageSignature).Signature()
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig), static.WithCertChain(certPEM, s.chainPEM(t)), s.timestamp(t, sig))
	if err != nil {
		t.Fatal(err)
	}
	check(t, imagesign.AttachSignature(d, ociSig, opts...))
}

// SignLegacyWithKeyTimestamped signs d with k in the legacy format, with
// an RFC 3161 timestamp of this virtual TSA.
func (s *Sigstore) SignLegacyWithKeyTimestamped(t testing.TB, d name.Digest, k *Key, opts ...remote.Option) {
	t.Helper()
	p, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig), s.timestamp(t, sig))
	if err != nil {
		t.Fatal(err)
	}
	check(t, imagesign.AttachSignature(d, ociSig, opts...))
}

func (s *Sigstore) chainPEM(t testing.TB) []byte {
	t.Helper()
	fulcio := s.VS.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	var out []byte
	for _, c := range append(append([]*x509.Certificate{}, fulcio.Intermediates...), fulcio.Root) {
		p, _ := cryptoutils.MarshalCertificateToPEM(c)
		out = append(out, p...)
	}
	return out
}

// logID is the virtual log's ID (hex).
func (s *Sigstore) logID(t testing.TB) string {
	t.Helper()
	id, err := s.VS.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// set signs a Rekor payload: the signed entry timestamp.
func (s *Sigstore) set(t testing.TB, body string, integrated, index int64) []byte {
	t.Helper()
	set, err := s.VS.RekorSignPayload(tlog.RekorPayload{Body: body, IntegratedTime: integrated, LogIndex: index, LogID: s.logID(t)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// SignLegacy signs d keylessly as identity from issuer, with a log entry
// and its signed entry timestamp, in the legacy ".sig" format.
func (s *Sigstore) SignLegacy(t testing.TB, d name.Digest, identity, issuer string, opts ...remote.Option) {
	t.Helper()
	s.SignLegacyAt(t, d, identity, issuer, time.Now().Add(time.Minute), opts...)
}

// SignLegacyAt is SignLegacy with the log's integrated time given: a time
// outside the certificate's ten minutes of validity makes an expired
// signature.
func (s *Sigstore) SignLegacyAt(t testing.TB, d name.Digest, identity, issuer string, integrated time.Time, opts ...remote.Option) {
	t.Helper()
	p, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ent, err := s.VS.SignAtTime(identity, issuer, p, integrated)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	cert := vc.(*sgbundle.Certificate).Certificate()
	sc, _ := ent.SignatureContent()
	sig := sc.(*sgbundle.MessageSignature).Signature()
	entries, _ := ent.TlogEntries()
	body := entries[0].Body().(string)
	certPEM, _ := cryptoutils.MarshalCertificateToPEM(cert)
	rb := &cbundle.RekorBundle{
		SignedEntryTimestamp: s.set(t, body, integrated.Unix(), entries[0].LogIndex()),
		Payload:              cbundle.RekorPayload{Body: body, IntegratedTime: integrated.Unix(), LogIndex: entries[0].LogIndex(), LogID: s.logID(t)},
	}
	ociSig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(sig), static.WithCertChain(certPEM, s.chainPEM(t)), static.WithBundle(rb))
	if err != nil {
		t.Fatal(err)
	}
	check(t, imagesign.AttachSignature(d, ociSig, opts...))
}

// SignBundle signs d keylessly in the Sigstore bundle format (a DSSE
// envelope over a cosign/sign/v1 statement, a log entry with inclusion
// promise and proof), stored as a referrer.
func (s *Sigstore) SignBundle(t testing.TB, d name.Digest, identity, issuer string, opts ...remote.Option) {
	t.Helper()
	leaf, priv, err := s.VS.GenerateLeafCert(identity, issuer)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv.(*ecdsa.PrivateKey), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	st := Statement(t, d, types.CosignSignPredicateType, nil)
	envJSON, err := sigdsse.WrapSigner(sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(st))
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(envJSON, &env); err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	integrated := time.Now().Add(time.Minute).Unix()
	entry, err := s.VS.GenerateTlogEntry(leaf, &env, sig, integrated, false)
	if err != nil {
		t.Fatal(err)
	}
	body := entry.Body().(string)
	raw, _ := base64.StdEncoding.DecodeString(body)
	proof, err := s.VS.GetInclusionProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	index := entry.LogIndex()
	logID := s.logID(t)
	logEntry := &models.LogEntryAnon{
		Body: body, IntegratedTime: &integrated, LogIndex: &index, LogID: &logID,
		Verification: &models.LogEntryAnonVerification{SignedEntryTimestamp: s.set(t, body, integrated, index), InclusionProof: proof},
	}
	certPEM, _ := cryptoutils.MarshalCertificateToPEM(leaf)
	b, err := cbundle.MakeNewBundle(leaf.PublicKey, logEntry, st, envJSON, certPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteAttestationNewBundleFormat(d, b, types.CosignSignPredicateType, ociremote.WithRemoteOptions(opts...)); err != nil {
		t.Fatal(err)
	}
}

// TrustedRootJSON is the virtual Sigstore's trust material as a Sigstore
// trusted_root.json (what Sigstore's TUF repository serves).
func (s *Sigstore) TrustedRootJSON(t testing.TB) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.VS.FulcioCertificateAuthorities(), s.VS.CTLogs(), s.VS.TimestampingAuthorities(), s.VS.RekorLogs())
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
