package policies

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion is the apiVersion of every policy document.
const APIVersion = "policy.ward.dev/v1"

// Kinds of policy document.
const (
	KindImagePolicy      = "ImagePolicy"
	KindValidationPolicy = "ValidationPolicy"
	KindSettings         = "Settings"
)

// Mode is what a failing policy does to a request.
type Mode string

// Modes. Enforce denies; warn admits with an admission warning; audit admits
// silently and records the failure in logs and metrics.
const (
	ModeEnforce Mode = "enforce"
	ModeWarn    Mode = "warn"
	ModeAudit   Mode = "audit"
)

// Stricter reports whether m is stricter than o (enforce > warn > audit).
func (m Mode) Stricter(o Mode) bool { return m.rank() > o.rank() }

func (m Mode) rank() int {
	switch m {
	case ModeEnforce:
		return 3
	case ModeWarn:
		return 2
	case ModeAudit:
		return 1
	}
	return 0
}

// TypeMeta and ObjectMeta are the Kubernetes-style header of a document.
type header struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
}

// ObjectMeta is the metadata of a policy document. Only the name is used;
// labels and annotations are allowed for the authors' own bookkeeping.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ImagePolicyDoc is an ImagePolicy document as written.
type ImagePolicyDoc struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ObjectMeta      `json:"metadata"`
	Spec       ImagePolicySpec `json:"spec"`
}

// ImagePolicySpec says which images must be signed by whom.
type ImagePolicySpec struct {
	// Mode is enforce (default), warn or audit.
	Mode Mode `json:"mode,omitempty"`
	// Images are the globs of the repositories the policy governs.
	Images []ImagePattern `json:"images"`
	// Match narrows the policy to namespaces and workload kinds.
	Match *Match `json:"match,omitempty"`
	// Authorities: any one that verifies suffices, unless Threshold is set.
	Authorities []Authority `json:"authorities"`
	// Threshold is how many distinct authorities (signers) must verify.
	// Zero means one.
	Threshold int `json:"threshold,omitempty"`
}

// ImagePattern is one image glob. "*" matches within a path segment, "**"
// across segments, "?" one character. Globs match the repository
// (registry/path), normalised as Docker does: "nginx" is
// "index.docker.io/library/nginx".
type ImagePattern struct {
	Glob string `json:"glob"`
}

// Match narrows a policy. Empty fields match everything.
type Match struct {
	// Namespaces lists namespace names.
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector selects namespaces by label.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Kinds lists workload kinds: Pod, Deployment, ReplicaSet, StatefulSet,
	// DaemonSet, Job, CronJob, ReplicationController.
	Kinds []string `json:"kinds,omitempty"`
}

// Authority is one way for an image to be trusted: a key, a keyless
// identity, a Notary Project trust store, or a static verdict. Exactly one
// of Key, Keyless, Notation and Static.
type Authority struct {
	Name    string      `json:"name,omitempty"`
	Key     *KeyRef     `json:"key,omitempty"`
	Keyless *KeylessRef `json:"keyless,omitempty"`
	// Notation trusts Notary Project signatures (notation sign,
	// notation-go) under the Notary Project's trust policy model.
	Notation *NotationRef `json:"notation,omitempty"`
	Static   *StaticRef   `json:"static,omitempty"`
	CTLog    *TLog        `json:"ctlog,omitempty"`
	// Source says where the authority's signatures are kept when not
	// beside the image.
	Source *SignatureSource `json:"source,omitempty"`
	// RFC3161Timestamp trusts signed timestamps from these timestamp
	// authorities: a signature's timestamp is verified, and a certificate
	// is checked at the time it gives (cosign's --timestamp-certificate-
	// chain). A keyless authority with timestamps needs no ctlog.
	RFC3161Timestamp *TimestampAuthorities `json:"rfc3161timestamp,omitempty"`
	// Attestations, when present, replace the signature check: the
	// authority is satisfied when each listed attestation is signed by it
	// and passes its condition (policy-controller's semantics).
	Attestations []Attestation `json:"attestations,omitempty"`
}

// TimestampAuthorities are RFC 3161 timestamp authorities.
type TimestampAuthorities struct {
	// CertChain holds the PEM certificates of the authorities: each
	// signing (leaf) certificate, intermediates and root.
	CertChain string `json:"certChain"`
}

// SignatureSource is where signatures and attestations are kept when not
// beside the image (cosign's COSIGN_REPOSITORY), and the credentials to
// read them.
type SignatureSource struct {
	// OCI is the repository that holds them ("registry.example.com/sigs").
	OCI string `json:"oci,omitempty"`
	// TagPrefix is put before the legacy tags' names
	// ("<prefix>sha256-<hex>.sig").
	TagPrefix string `json:"tagPrefix,omitempty"`
	// SignaturePullSecrets are Secrets in the admitted workload's namespace
	// used to read them, instead of the workload's own pull secrets. They
	// are read from the cluster: outside the bundle's signatures.
	SignaturePullSecrets []LocalObjectReference `json:"signaturePullSecrets,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// KeyRef is a public key: PEM data, a KMS URI or a Secret. Exactly one.
type KeyRef struct {
	Data string `json:"data,omitempty"`
	KMS  string `json:"kms,omitempty"`
	// SecretRef names a Secret in the controller's namespace whose one
	// data entry is the PEM key (or, for ca-cert, the PEM certificates). It
	// is read from the cluster at admission time, outside the bundle's
	// signatures (policy-controller's key.secretRef).
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// HashAlgorithm is sha256 (default), sha384 or sha512.
	HashAlgorithm string `json:"hashAlgorithm,omitempty"`
}

// KeylessRef trusts certificates from a Fulcio CA for given identities.
type KeylessRef struct {
	// CACert holds the PEM certificates of the Fulcio root and any
	// intermediates (policy-controller's "ca-cert").
	CACert *KeyRef `json:"ca-cert,omitempty"`
	// Identities: a certificate must match one.
	Identities []Identity `json:"identities"`
	// SCTPublicKeys are PEM keys of the certificate transparency logs whose
	// signed certificate timestamps are accepted.
	SCTPublicKeys []string `json:"sctPublicKeys,omitempty"`
	// IgnoreSCTUnsafe accepts certificates without a verified SCT.
	IgnoreSCTUnsafe bool `json:"ignoreSCTUnsafe,omitempty"`
	// TrustRootRef names a TrustRoot of the bundle whose Fulcio CAs (and
	// CT log keys, unless sctPublicKeys are given) are trusted, instead of
	// ca-cert.
	TrustRootRef string `json:"trustRootRef,omitempty"`
}

// Identity is an OIDC issuer and subject, each exact or a regular
// expression.
type Identity struct {
	Issuer        string `json:"issuer,omitempty"`
	Subject       string `json:"subject,omitempty"`
	IssuerRegExp  string `json:"issuerRegExp,omitempty"`
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// NotationRef trusts Notary Project signatures the way a Notation trust
// policy statement does (notation's trustpolicy.json, with the trust
// stores inline): a signature verifies when its certificate chain holds a
// certificate of the trust store and its leaf matches a trusted identity,
// with the checks the verification level enforces.
type NotationRef struct {
	// TrustStore holds the trusted certificates by the Notary Project's
	// store types.
	TrustStore NotationTrustStore `json:"trustStore"`
	// TrustedIdentities are "x509.subject: <DN>" entries (the DN must
	// name at least C, ST and O; the leaf's subject must contain every
	// attribute given), or "*" for any certificate the trust store
	// covers.
	TrustedIdentities []string `json:"trustedIdentities,omitempty"`
	// SignatureVerification is the verification level and its
	// overrides; the default is level strict.
	SignatureVerification *NotationVerification `json:"signatureVerification,omitempty"`
}

// NotationTrustStore is a Notation trust store, by store type. Each holds
// PEM certificates.
type NotationTrustStore struct {
	// CA holds certificate authorities (notation's "ca" store): a
	// signature's chain must contain one of them.
	CA *CertificatesRef `json:"ca,omitempty"`
	// SigningAuthority holds signing authorities (notation's
	// "signingAuthority" store).
	SigningAuthority *CertificatesRef `json:"signingAuthority,omitempty"`
	// TSA holds the self-signed roots of trusted RFC 3161 timestamp
	// authorities (notation's "tsa" store). With it, every signature must
	// carry a timestamp they vouch for, unless verifyTimestamp is
	// afterCertExpiry.
	TSA *CertificatesRef `json:"tsa,omitempty"`
}

// CertificatesRef is PEM certificates, given inline or read from a
// Secret. Exactly one of Data and SecretRef.
type CertificatesRef struct {
	Data string `json:"data,omitempty"`
	// SecretRef names a Secret in the controller's namespace whose one
	// data entry is the PEM certificates. It is read from the cluster at
	// admission time, outside the bundle's signatures. An authority may
	// read one of its stores from a Secret.
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// NotationVerification is a Notation trust policy's
// signatureVerification.
type NotationVerification struct {
	// Level is strict (default), permissive, audit or skip, with the
	// Notary Project's meaning: strict enforces every check; permissive
	// only logs expiry, timestamp and revocation failures; audit enforces
	// only integrity (the signature need not be trusted); skip verifies
	// nothing and needs no signature.
	Level string `json:"level,omitempty"`
	// Override sets the action (enforce, log, or for revocation skip) of
	// a check: authenticity, authenticTimestamp, expiry, revocation.
	Override map[string]string `json:"override,omitempty"`
	// VerifyTimestamp is always (default) or afterCertExpiry: when the
	// signature's timestamp is verified, given a tsa store.
	VerifyTimestamp string `json:"verifyTimestamp,omitempty"`
}

// StaticRef is a fixed verdict: pass or fail, with a message saying why
// it fails.
type StaticRef struct {
	Action  string `json:"action"`
	Message string `json:"message,omitempty"`
}

// TLog requires a transparency-log (Rekor) entry for the signature and
// verifies its signed entry timestamp offline (policy-controller calls
// this "ctlog").
type TLog struct {
	// URL is informational: verification is offline.
	URL string `json:"url,omitempty"`
	// PublicKeys are the PEM public keys of the accepted Rekor logs.
	PublicKeys []string `json:"publicKeys,omitempty"`
	// TrustRootRef names a TrustRoot of the bundle whose Rekor logs are
	// accepted, instead of publicKeys.
	TrustRootRef string `json:"trustRootRef,omitempty"`
}

// Attestation requires a signed in-toto statement of PredicateType whose
// predicate passes Policy. PredicateType is a URI or one of cosign's short
// names (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx,
// spdxjson, cyclonedx, link, vuln, openvex), which mean the URIs cosign
// gives them.
type Attestation struct {
	Name          string             `json:"name"`
	PredicateType string             `json:"predicateType"`
	Policy        *AttestationPolicy `json:"policy,omitempty"`
}

// AttestationPolicy is a condition over an attestation. Type "cel" is a
// boolean expression over `predicate` and `predicateType`; "cue" and
// "rego" judge the whole in-toto statement as policy-controller does (CUE:
// unified with the statement, must validate; Rego: package sigstore,
// data.sigstore.isCompliant must be true).
type AttestationPolicy struct {
	Type string `json:"type"`
	Data string `json:"data"`
}

// ValidationPolicyDoc is a ValidationPolicy document as written.
type ValidationPolicyDoc struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Metadata   ObjectMeta           `json:"metadata"`
	Spec       ValidationPolicySpec `json:"spec"`
}

// ValidationPolicySpec holds CEL rules over the admitted object.
type ValidationPolicySpec struct {
	Mode        Mode         `json:"mode,omitempty"`
	Match       *Match       `json:"match,omitempty"`
	Validations []Validation `json:"validations"`
}

// Validation is one CEL rule. The expression sees `object` (the admitted
// object), `oldObject` (on update, else null) and `request` (namespace,
// name, operation, kind, userInfo) and must return a bool.
type Validation struct {
	Expression string `json:"expression"`
	Message    string `json:"message,omitempty"`
}

// SettingsDoc is the optional bundle-wide Settings document.
type SettingsDoc struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       SettingsSpec `json:"spec"`
}

// SettingsSpec holds bundle-wide defaults.
type SettingsSpec struct {
	// UnmatchedImages is what happens to an image no ImagePolicy matches:
	// "deny" (default) or "allow".
	UnmatchedImages string `json:"unmatchedImages,omitempty"`
	// UnmatchedMode is the mode of the unmatched-image verdict: enforce
	// (default), warn or audit.
	UnmatchedMode Mode `json:"unmatchedMode,omitempty"`
	// ExemptNamespaces are never checked.
	ExemptNamespaces []string `json:"exemptNamespaces,omitempty"`
	// ClusterReferences is "allow" (default) or "refuse": whether policies
	// may read objects from the cluster at admission time (policy-
	// controller's signaturePullSecrets, key.secretRef), which are outside
	// the bundle's signatures.
	ClusterReferences string `json:"clusterReferences,omitempty"`
}
