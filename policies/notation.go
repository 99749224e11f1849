package policies

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Notation trust store names: an authority has one store of each type,
// named "ward" in the trust policy it compiles to.
const notationStoreName = "ward"

// Notation is a compiled notation authority: a Notation trust policy with
// one statement for every repository, and its trust store.
type Notation struct {
	// Policy is the trust policy document given to notation-go's
	// verifier: one statement, registry scope "*", naming the stores
	// below as "<type>:ward".
	Policy *trustpolicy.Document
	// Certificates by Notation store type ("ca", "signingAuthority",
	// "tsa").
	Stores map[string][]*x509.Certificate
	// Level is the verification level as written (strict, permissive,
	// audit, skip); Override its overrides.
	Level string
	// StoreID names the trust store in messages: the SHA-256 of its
	// certificates, shortened.
	StoreID string
	// SecretRef names the Secret (in the controller's namespace) the
	// store of type SecretStore is read from at admission time; see
	// CompiledAuthority.WithSecret.
	SecretRef, SecretStore string
	// AuthenticityEnforced is false when the level (audit) or an override
	// only logs authenticity: any intact signature is accepted, whoever
	// made it, so the authority cannot count signers.
	AuthenticityEnforced bool
	// id covers everything that decides a verdict: stores, identities,
	// level, overrides.
	id string
}

// Skip reports whether the authority verifies nothing (level skip).
func (n *Notation) Skip() bool { return n.Level == trustpolicy.LevelSkip.Name }

// CountsSigners reports whether the authority's verified signers are
// trusted ones, so that a threshold may count them: not at level skip, nor
// where authenticity is only logged.
func (n *Notation) CountsSigners() bool { return !n.Skip() && n.AuthenticityEnforced }

// notation checks a notation authority and compiles its trust policy.
func (c *compiler) notation(a at, field string, n *NotationRef) *Notation {
	v := NotationVerification{}
	if n.SignatureVerification != nil {
		v = *n.SignatureVerification
	}
	if v.Level == "" {
		v.Level = trustpolicy.LevelStrict.Name
	}
	out := &Notation{Level: v.Level, Stores: map[string][]*x509.Certificate{}}
	errs := len(a.c.errs)
	switch v.Level {
	case trustpolicy.LevelStrict.Name, trustpolicy.LevelPermissive.Name, trustpolicy.LevelAudit.Name:
	case trustpolicy.LevelSkip.Name:
		if n.TrustStore != (NotationTrustStore{}) || len(n.TrustedIdentities) > 0 {
			a.fail(field, "level skip verifies nothing: give no trustStore and no trustedIdentities")
			return nil
		}
	default:
		a.fail(field+".signatureVerification.level", "is %q, want strict, permissive, audit or skip", v.Level)
		return nil
	}
	h := sha256.New()
	var stores []string
	for _, st := range []struct {
		typ string
		ref *CertificatesRef
	}{{"ca", n.TrustStore.CA}, {"signingAuthority", n.TrustStore.SigningAuthority}, {"tsa", n.TrustStore.TSA}} {
		if st.ref == nil {
			continue
		}
		f := fmt.Sprintf("%s.trustStore.%s", field, st.typ)
		stores = append(stores, st.typ+":"+notationStoreName)
		if ref := st.ref.SecretRef; ref != nil {
			switch {
			case st.ref.Data != "":
				a.fail(f, "data and secretRef are exclusive")
			case out.SecretRef != "":
				a.fail(f+".secretRef", "the %s store is already read from a Secret; an authority reads at most one store from a Secret", out.SecretStore)
			case secretName(a, f+".secretRef.name", ref.Name):
				out.SecretRef, out.SecretStore = ref.Name, st.typ
				fmt.Fprintf(h, "secret\x00%s\x00%s\x00", st.typ, ref.Name)
			}
			continue
		}
		certs, err := storeCertificates(st.typ, st.ref.Data)
		if err != nil {
			a.fail(f+".data", "%s", err)
			continue
		}
		out.Stores[st.typ] = certs
	}
	out.StoreID = storeID(out.Stores)
	fmt.Fprintf(h, "stores\x00%s\x00", out.StoreID)
	if !out.Skip() {
		if n.TrustStore.CA == nil && n.TrustStore.SigningAuthority == nil {
			a.fail(field+".trustStore", "a ca or signingAuthority store is required: the certificates a signature's chain must contain")
		}
		if len(n.TrustedIdentities) == 0 {
			a.fail(field+".trustedIdentities", `at least one is required: "x509.subject: C=…, ST=…, O=…, CN=…", or "*" for any certificate the trust store covers`)
		}
	}
	override := map[trustpolicy.ValidationType]trustpolicy.ValidationAction{}
	for k, action := range v.Override {
		override[trustpolicy.ValidationType(k)] = trustpolicy.ValidationAction(action)
	}
	out.Policy = &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:           "ward",
			RegistryScopes: []string{"*"},
			SignatureVerification: trustpolicy.SignatureVerification{
				VerificationLevel: v.Level,
				Override:          override,
				VerifyTimestamp:   trustpolicy.TimestampOption(v.VerifyTimestamp),
			},
			TrustStores:       stores,
			TrustedIdentities: slices.Clone(n.TrustedIdentities),
		}},
	}
	for i, id := range n.TrustedIdentities {
		if id != "*" && !strings.HasPrefix(id, "x509.subject:") {
			a.fail(fmt.Sprintf("%s.trustedIdentities[%d]", field, i), `%q: want "x509.subject: <DN>" or "*" (notation verifies no other kind)`, id)
		}
	}
	if len(a.c.errs) > errs {
		return nil
	}
	if err := out.Policy.Validate(); err != nil {
		// notation-go's messages name its trust policy file and statement;
		// the field is what the author wrote.
		msg := strings.ReplaceAll(err.Error(), `trust policy statement "ward"`, "the authority")
		a.fail(field, "%s", oneLine(msg))
		return nil
	}
	level, err := out.Policy.TrustPolicies[0].SignatureVerification.GetVerificationLevel()
	if err != nil {
		a.fail(field+".signatureVerification", "%s", oneLine(err.Error()))
		return nil
	}
	out.AuthenticityEnforced = level.Enforcement[trustpolicy.TypeAuthenticity] == trustpolicy.ActionEnforce
	if !out.AuthenticityEnforced && !out.Skip() && level.Enforcement[trustpolicy.TypeRevocation] != trustpolicy.ActionSkip {
		// Where authenticity is only logged, the certificates are anyone's:
		// their OCSP and CRL addresses would make the webhook send
		// requests wherever a signer likes, for a check that is only
		// logged too. Skip it.
		override[trustpolicy.TypeRevocation] = trustpolicy.ActionSkip
	}
	fmt.Fprintf(h, "level\x00%s\x00ts\x00%s\x00", v.Level, v.VerifyTimestamp)
	for _, k := range slices.Sorted(maps.Keys(v.Override)) {
		fmt.Fprintf(h, "override\x00%s\x00%s\x00", k, v.Override[k])
	}
	for _, id := range n.TrustedIdentities {
		fmt.Fprintf(h, "identity\x00%s\x00", id)
	}
	out.id = hex.EncodeToString(h.Sum(nil))
	return out
}

// storeID names a trust store by its certificates: the SHA-256 of their
// types and hashes, shortened.
func storeID(stores map[string][]*x509.Certificate) string {
	h := sha256.New()
	for _, typ := range slices.Sorted(maps.Keys(stores)) {
		for _, cert := range stores[typ] {
			fmt.Fprintf(h, "%s\x00%x\x00", typ, sha256.Sum256(cert.Raw))
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// withSecret is a copy of n with the store it reads from a Secret filled
// from value.
func (n *Notation) withSecret(value []byte) (*Notation, error) {
	certs, err := storeCertificates(n.SecretStore, string(value))
	if err != nil {
		return nil, fmt.Errorf("Secret %s (the %s trust store): %w", n.SecretRef, n.SecretStore, err)
	}
	out := *n
	out.Stores = maps.Clone(n.Stores)
	out.Stores[n.SecretStore] = certs
	out.SecretRef, out.SecretStore = "", ""
	out.StoreID = storeID(out.Stores)
	return &out, nil
}

// storeCertificates parses a trust store's PEM certificates and checks
// them with NotationStoreCertificate.
func storeCertificates(typ, data string) ([]*x509.Certificate, error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(data))
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificates")
	}
	for i, cert := range certs {
		if err := NotationStoreCertificate(typ, cert); err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
	}
	return certs, nil
}

// NotationStoreCertificate checks a certificate for a Notation trust store
// of the given type as notation's own file-based trust store does: in a
// ca or signingAuthority store, a CA or a self-signed certificate (such
// as `notation cert generate-test` makes); in a tsa store, a self-signed
// root CA.
func NotationStoreCertificate(typ string, cert *x509.Certificate) error {
	selfSigned := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
	switch {
	case typ == "tsa" && (!cert.IsCA || !bytes.Equal(cert.RawIssuer, cert.RawSubject) || cert.CheckSignatureFrom(cert) != nil):
		return fmt.Errorf("%s is not a self-signed root CA: a tsa store holds the roots of timestamp authorities", cert.Subject)
	case !cert.IsCA && !selfSigned:
		return fmt.Errorf("%s is neither a CA nor self-signed", cert.Subject)
	}
	return nil
}
