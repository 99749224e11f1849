package signtest

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go"
	notationregistry "github.com/notaryproject/notation-go/registry"
	"github.com/notaryproject/notation-go/signer"
	"github.com/notaryproject/tspclient-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/ocsp"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"ward.dev/ward/internal/notarycerts"
)

// Notation envelope media types.
const (
	JWS  = "application/jose+json"
	COSE = "application/cose"
)

// NotationChain makes a Notary Project signing chain for subject (see
// notarycerts.Subject), valid from an hour ago for a day.
func NotationChain(t testing.TB, subject string) *notarycerts.Chain {
	t.Helper()
	now := time.Now()
	c, err := notarycerts.NewChain(notarycerts.Subject(subject, "ward test"), now.Add(-time.Hour), now.Add(24*time.Hour))
	check(t, err)
	return c
}

// NotationTSA starts an RFC 3161 timestamp authority over HTTP, valid from
// a day ago for two days, and returns it with its URL.
func NotationTSA(t testing.TB) (*notarycerts.TSA, string) {
	t.Helper()
	now := time.Now()
	tsa, err := notarycerts.NewTSA(now.Add(-24*time.Hour), now.Add(24*time.Hour))
	check(t, err)
	srv := httptest.NewServer(tsa)
	t.Cleanup(srv.Close)
	return tsa, srv.URL
}

// NotationRegistry says how to push to a registry with oras (what notation
// uses): plain HTTP for the in-process registry, else TLS with rt and
// basic auth.
type NotationRegistry struct {
	PlainHTTP          bool
	Transport          http.RoundTripper
	Username, Password string
}

// NotationOptions change how SignNotation signs.
type NotationOptions struct {
	// MediaType is the envelope: JWS (default) or COSE.
	MediaType string
	// TSAURL, when set, timestamps the signature with that TSA, whose
	// root is TSARoot.
	TSAURL  string
	TSARoot *x509.Certificate
	// SigningTime, when set, signs at that time with notation-core-go
	// (notation-go signs at the present): a chain that has expired since.
	SigningTime time.Time
	// Expiry, with SigningTime, is the signature's own expiry.
	Expiry time.Time
	// Claimed, when set, is the image the signed payload names, while
	// the signature is still pushed as d's referrer: a signature copied
	// from another image. It needs SigningTime.
	Claimed *name.Digest
	// Tamper flips a byte of the envelope before pushing it.
	Tamper bool
}

// SignNotation signs d with the chain's leaf using notation-go's own code
// and pushes the signature the way `notation sign` does: an OCI manifest
// with d as subject, stored through the referrers API or, on a registry
// without one, the referrers tag schema. remoteOpts read d's descriptor.
func SignNotation(t testing.TB, d name.Digest, chain *notarycerts.Chain, reg NotationRegistry, o NotationOptions, remoteOpts ...remote.Option) {
	t.Helper()
	if o.MediaType == "" {
		o.MediaType = JWS
	}
	ctx := t.Context()
	head, err := remote.Head(d, remoteOpts...)
	check(t, err)
	subject := ocispec.Descriptor{MediaType: string(head.MediaType), Digest: digest.Digest(head.Digest.String()), Size: head.Size}

	repo, err := orasremote.NewRepository(d.Context().Name())
	check(t, err)
	repo.PlainHTTP = reg.PlainHTTP
	client := &auth.Client{Client: &http.Client{Transport: reg.Transport}}
	if reg.Username != "" {
		client.Credential = auth.StaticCredential(d.RegistryStr(), auth.Credential{Username: reg.Username, Password: reg.Password})
	}
	if reg.Transport == nil {
		client.Client = http.DefaultClient
	}
	repo.Client = client
	target := notationregistry.NewRepository(repo)

	var ts tspclient.Timestamper
	var roots *x509.CertPool
	if o.TSAURL != "" {
		ts, err = tspclient.NewHTTPTimestamper(nil, o.TSAURL)
		check(t, err)
		roots = x509.NewCertPool()
		roots.AddCert(o.TSARoot)
	}
	if o.SigningTime.IsZero() {
		s, err := signer.NewGenericSigner(chain.Key, chain.Certificates())
		check(t, err)
		_, err = notation.Sign(ctx, s, target, notation.SignOptions{
			SignerSignOptions: notation.SignerSignOptions{SignatureMediaType: o.MediaType, Timestamper: ts, TSARootCAs: roots},
			ArtifactReference: d.String(),
		})
		check(t, err)
		return
	}
	// notation-go signs at the present: sign with notation-core-go at the
	// given time, then push as notation-go does.
	signed := subject
	if o.Claimed != nil {
		h, err := remote.Head(*o.Claimed, remoteOpts...)
		check(t, err)
		signed = ocispec.Descriptor{MediaType: string(h.MediaType), Digest: digest.Digest(h.Digest.String()), Size: h.Size}
	}
	payload, err := json.Marshal(struct {
		TargetArtifact ocispec.Descriptor `json:"targetArtifact"`
	}{signed})
	check(t, err)
	ls, err := signature.NewLocalSigner(chain.Certificates(), chain.Key)
	check(t, err)
	env, err := signature.NewEnvelope(o.MediaType)
	check(t, err)
	blob, err := env.Sign(&signature.SignRequest{
		Payload:       signature.Payload{ContentType: "application/vnd.cncf.notary.payload.v1+json", Content: payload},
		Signer:        ls,
		SigningTime:   o.SigningTime,
		Expiry:        o.Expiry,
		SigningScheme: signature.SigningSchemeX509,
		SigningAgent:  "ward-test",
		Timestamper:   ts,
		TSARootCAs:    roots,
	})
	check(t, err)
	if o.Tamper {
		blob[len(blob)/2] ^= 1
	}
	_, _, err = target.PushSignature(ctx, o.MediaType, blob, subject, nil)
	check(t, err)
}

// OCSPResponder answers OCSP requests about certificates its issuer
// issued: good, or revoked when revoked says so. Close stops it (an
// unreachable responder).
type OCSPResponder struct {
	srv     *httptest.Server
	Issuer  *x509.Certificate
	Key     crypto.Signer
	Revoked bool
}

// NewOCSPResponder starts a responder; set Issuer and Key before the first
// request. URL is what the leaf names.
func NewOCSPResponder(t testing.TB) *OCSPResponder {
	t.Helper()
	r := &OCSPResponder{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the responder's address.
func (r *OCSPResponder) URL() string { return r.srv.URL }

// Close stops the responder.
func (r *OCSPResponder) Close() { r.srv.Close() }

func (r *OCSPResponder) serve(w http.ResponseWriter, req *http.Request) {
	var raw []byte
	if req.Method == http.MethodPost {
		raw, _ = io.ReadAll(io.LimitReader(req.Body, 64<<10))
	} else {
		b64, _ := url.PathUnescape(strings.TrimPrefix(req.URL.Path, "/"))
		raw, _ = base64.StdEncoding.DecodeString(b64)
	}
	q, err := ocsp.ParseRequest(raw)
	if err != nil {
		http.Error(w, "not an OCSP request", http.StatusBadRequest)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: q.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	if r.Revoked {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
	}
	resp, err := ocsp.CreateResponse(r.Issuer, r.Issuer, tmpl, r.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

// NotationExpiredChain makes a chain for subject that was valid from three
// hours ago until an hour ago, and the time in its validity to sign at
// (two hours ago; set a test TSA's clock to it to timestamp there).
func NotationExpiredChain(t testing.TB, subject string) (*notarycerts.Chain, time.Time) {
	t.Helper()
	now := time.Now()
	c, err := notarycerts.NewChain(notarycerts.Subject(subject, "ward test"), now.Add(-3*time.Hour), now.Add(-time.Hour))
	check(t, err)
	return c, now.Add(-2 * time.Hour)
}
