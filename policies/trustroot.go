package policies

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/policies/sigstoretuf"
)

// TrustRootDoc is a sigstore policy-controller TrustRoot as written: the
// keys and certificates of a Sigstore instance that keyless authorities
// and transparency logs refer to by name (trustRootRef). Inside a bundle it
// is protected by the bundle's own TUF chain.
type TrustRootDoc struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Metadata   ObjectMeta    `json:"metadata"`
	Spec       TrustRootSpec `json:"spec"`
}

// TrustRootSpec is one of a TUF remote, a serialized TUF repository, or
// the keys themselves.
type TrustRootSpec struct {
	Remote       *TUFRemote     `json:"remote,omitempty"`
	Repository   *TUFRepository `json:"repository,omitempty"`
	SigstoreKeys *SigstoreKeys  `json:"sigstoreKeys,omitempty"`
}

// TUFRepository is a serialized TUF repository: its pinned root and a
// gzipped tar of the repository folder (both base64 in the document).
type TUFRepository struct {
	Root              []byte `json:"root"`
	MirrorFS          []byte `json:"mirrorFS"`
	Targets           string `json:"targets,omitempty"`
	TrustedRootTarget string `json:"trustedRootTarget,omitempty"`
}

// TUFRemote is a TUF mirror and its pinned root.
type TUFRemote struct {
	Root              []byte `json:"root"`
	Mirror            string `json:"mirror"`
	Targets           string `json:"targets,omitempty"`
	TrustedRootTarget string `json:"trustedRootTarget,omitempty"`
}

// SigstoreKeys are a Sigstore instance's trust material; certificate
// chains and keys are PEM, base64-encoded in the document.
type SigstoreKeys struct {
	CertificateAuthorities []CertificateAuthority    `json:"certificateAuthorities"`
	TLogs                  []TransparencyLogInstance `json:"tLogs,omitempty"`
	CTLogs                 []TransparencyLogInstance `json:"ctLogs,omitempty"`
	TimeStampAuthorities   []CertificateAuthority    `json:"timestampAuthorities,omitempty"`
}

// CertificateAuthority is a Fulcio (or timestamp) CA: its chain, root
// last.
type CertificateAuthority struct {
	Subject   DistinguishedName `json:"subject"`
	URI       string            `json:"uri"`
	CertChain []byte            `json:"certChain"`
}

// DistinguishedName names a CA.
type DistinguishedName struct {
	Organization string `json:"organization"`
	CommonName   string `json:"commonName"`
}

// TransparencyLogInstance is a Rekor or certificate transparency log.
type TransparencyLogInstance struct {
	BaseURL       string `json:"baseURL"`
	HashAlgorithm string `json:"hashAlgorithm"`
	PublicKey     []byte `json:"publicKey"`
}

// trustRoot is a compiled TrustRoot: PEM texts as ward's keyless
// authorities and logs take them.
type trustRoot struct {
	caPEM         string
	tlogs, ctlogs []string
	// tsaPEM holds the timestamp authorities' chains ("" for none).
	tsaPEM string
}

// trustRootDoc compiles a TrustRoot and keeps it by name for the
// ClusterImagePolicies that refer to it.
func (c *compiler) trustRootDoc(a at, doc *TrustRootDoc) {
	s := &doc.Spec
	n := 0
	for _, set := range []bool{s.Remote != nil, s.Repository != nil, s.SigstoreKeys != nil} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		a.fail("spec", "exactly one of remote, repository and sigstoreKeys is required")
		return
	case s.Remote != nil:
		keys, err := c.remoteKeys(doc.Metadata.Name, s.Remote)
		if err != nil {
			a.fail("spec.remote", "%s", oneLine(err.Error()))
			return
		}
		c.keepTrustRoot(doc.Metadata.Name, c.sigstoreKeys(a, "spec.remote (its trusted root)", keys))
		return
	case s.Repository != nil:
		keys, err := repositoryKeys(s.Repository)
		if err != nil {
			a.fail("spec.repository", "%s", oneLine(err.Error()))
			return
		}
		c.keepTrustRoot(doc.Metadata.Name, c.sigstoreKeys(a, "spec.repository (its trusted root)", keys))
		return
	}
	c.keepTrustRoot(doc.Metadata.Name, c.sigstoreKeys(a, "spec.sigstoreKeys", s.SigstoreKeys))
}

// remoteKeys reads a remote TrustRoot's mirror through the compile's
// Remotes, and records the version of what it read.
func (c *compiler) remoteKeys(name string, r *TUFRemote) (*SigstoreKeys, error) {
	if c.remotes == nil {
		return nil, fmt.Errorf("a TUF mirror read at run time, and nothing here reads it (the controller's sync loop and the ward commands do); or freeze it into the bundle with: ward trustroot import --tuf-mirror %s --tuf-root root.json", orPlaceholder(r.Mirror))
	}
	if len(r.Root) == 0 || r.Mirror == "" {
		return nil, errors.New("root and mirror are required")
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	m, err := c.remotes.Get(ctx, r.Mirror, r.Root, sigstoretuf.Options{Targets: r.Targets, TrustedRootTarget: r.TrustedRootTarget})
	if err != nil {
		return nil, err
	}
	c.set.remoteVersions = append(c.set.remoteVersions, name+"="+m.Version)
	if c.set.remoteUntil.IsZero() || m.Until.Before(c.set.remoteUntil) {
		c.set.remoteUntil = m.Until
	}
	return SigstoreKeysFrom(m.Trusted)
}

func orPlaceholder(s string) string {
	if s == "" {
		return "URL"
	}
	return s
}

// repositoryKeys verifies a serialized TUF repository and reads its
// trusted root (see sigstoretuf.FromSerialized).
func repositoryKeys(r *TUFRepository) (*SigstoreKeys, error) {
	if len(r.Root) == 0 || len(r.MirrorFS) == 0 {
		return nil, errors.New("root and mirrorFS are required")
	}
	tr, err := sigstoretuf.FromSerialized(r.Root, r.MirrorFS, sigstoretuf.Options{Targets: r.Targets, TrustedRootTarget: r.TrustedRootTarget})
	if err != nil {
		return nil, err
	}
	return SigstoreKeysFrom(tr)
}

func (c *compiler) keepTrustRoot(name string, tr *trustRoot) {
	if c.trustRoots == nil {
		c.trustRoots = map[string]*trustRoot{}
	}
	c.trustRoots[name] = tr
}

// sigstoreKeys compiles trust material; field names where it came from.
func (c *compiler) sigstoreKeys(a at, field string, k *SigstoreKeys) *trustRoot {
	tr := &trustRoot{}
	if len(k.CertificateAuthorities) == 0 {
		a.fail(field+".certificateAuthorities", "at least one certificate authority is required")
	}
	var chains []string
	for i, ca := range k.CertificateAuthorities {
		f := fmt.Sprintf("%s.certificateAuthorities[%d].certChain", field, i)
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM(ca.CertChain)
		if err != nil || len(certs) == 0 {
			a.fail(f, "no PEM certificates (the chain is PEM, base64-encoded)")
			continue
		}
		chains = append(chains, strings.TrimSpace(string(ca.CertChain)))
	}
	tr.caPEM = strings.Join(chains, "\n") + "\n"
	logs := func(name string, in []TransparencyLogInstance) []string {
		var out []string
		for i, l := range in {
			f := fmt.Sprintf("%s.%s[%d].publicKey", field, name, i)
			if _, err := cryptoutils.UnmarshalPEMToPublicKey(l.PublicKey); err != nil {
				a.fail(f, "not a PEM public key (the key is PEM, base64-encoded)")
				continue
			}
			out = append(out, string(l.PublicKey))
		}
		return out
	}
	var tsas []string
	for i, ta := range k.TimeStampAuthorities {
		if certs, err := cryptoutils.UnmarshalCertificatesFromPEM(ta.CertChain); err != nil || len(certs) == 0 {
			a.fail(fmt.Sprintf("%s.timestampAuthorities[%d].certChain", field, i), "no PEM certificates (the chain is PEM, base64-encoded)")
			continue
		}
		tsas = append(tsas, strings.TrimSpace(string(ta.CertChain)))
	}
	if len(tsas) > 0 {
		tr.tsaPEM = strings.Join(tsas, "\n") + "\n"
	}
	tr.tlogs = logs("tLogs", k.TLogs)
	tr.ctlogs = logs("ctLogs", k.CTLogs)
	return tr
}

// trustRootRef looks up a TrustRoot of the bundle by name.
func (c *compiler) trustRootRef(a at, field, name string) *trustRoot {
	tr, ok := c.trustRoots[name]
	if !ok {
		a.fail(field, "no TrustRoot %q in the bundle (a TrustRoot is trusted only when it travels in the signed bundle)", name)
	}
	return tr
}

// DefaultTrustRoot is the name of the TrustRoot a keyless authority with
// neither ca-cert nor trustRootRef trusts (policy-controller's default:
// Sigstore's public-good instance). `ward trustroot import` writes it under
// this name unless told otherwise.
const DefaultTrustRoot = "sigstore-public-good"

// TrustRootFromSigstore renders Sigstore trust material (a
// trusted_root.json read by sigstore-go) as a TrustRoot document with
// sigstoreKeys, named name: the Fulcio chains (root last), the Rekor and
// CT log keys, and the timestamp authorities' chains.
func TrustRootFromSigstore(tm root.TrustedMaterial, name string) ([]byte, error) {
	keys, err := SigstoreKeysFrom(tm)
	if err != nil {
		return nil, err
	}
	doc := TrustRootDoc{APIVersion: SigstoreGroup + "/v1alpha1", Kind: KindTrustRoot, Metadata: ObjectMeta{Name: name}, Spec: TrustRootSpec{SigstoreKeys: keys}}
	return yaml.Marshal(doc)
}

// SigstoreKeysFrom renders Sigstore trust material as a TrustRoot's
// sigstoreKeys.
func SigstoreKeysFrom(tm root.TrustedMaterial) (*SigstoreKeys, error) {
	keys := &SigstoreKeys{}
	chain := func(certs ...*x509.Certificate) ([]byte, error) {
		var out []byte
		for _, c := range certs {
			if c == nil {
				continue
			}
			p, err := cryptoutils.MarshalCertificateToPEM(c)
			if err != nil {
				return nil, err
			}
			out = append(out, p...)
		}
		return out, nil
	}
	for _, ca := range tm.FulcioCertificateAuthorities() {
		f, ok := ca.(*root.FulcioCertificateAuthority)
		if !ok {
			return nil, fmt.Errorf("certificate authority of type %T: only Fulcio CAs with certificates can be written", ca)
		}
		pem, err := chain(append(slices.Clone(f.Intermediates), f.Root)...)
		if err != nil {
			return nil, err
		}
		keys.CertificateAuthorities = append(keys.CertificateAuthorities, CertificateAuthority{
			Subject: DistinguishedName{Organization: first(f.Root.Subject.Organization), CommonName: f.Root.Subject.CommonName}, URI: f.URI, CertChain: pem})
	}
	for _, ta := range tm.TimestampingAuthorities() {
		s, ok := ta.(*root.SigstoreTimestampingAuthority)
		if !ok {
			continue
		}
		pem, err := chain(append(append([]*x509.Certificate{s.Leaf}, s.Intermediates...), s.Root)...)
		if err != nil {
			return nil, err
		}
		keys.TimeStampAuthorities = append(keys.TimeStampAuthorities, CertificateAuthority{
			Subject: DistinguishedName{Organization: first(s.Root.Subject.Organization), CommonName: s.Root.Subject.CommonName}, URI: s.URI, CertChain: pem})
	}
	logs := func(in map[string]*root.TransparencyLog) ([]TransparencyLogInstance, error) {
		var out []TransparencyLogInstance
		for _, id := range slices.Sorted(maps.Keys(in)) {
			l := in[id]
			pem, err := cryptoutils.MarshalPublicKeyToPEM(l.PublicKey)
			if err != nil {
				return nil, err
			}
			out = append(out, TransparencyLogInstance{BaseURL: l.BaseURL, HashAlgorithm: "sha-256", PublicKey: pem})
		}
		return out, nil
	}
	var err error
	if keys.TLogs, err = logs(tm.RekorLogs()); err != nil {
		return nil, err
	}
	if keys.CTLogs, err = logs(tm.CTLogs()); err != nil {
		return nil, err
	}
	if len(keys.CertificateAuthorities) == 0 {
		return nil, errors.New("the trusted root has no certificate authority")
	}
	return keys, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
