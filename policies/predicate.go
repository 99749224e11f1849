package policies

// predicateTypes maps the short names cosign accepts for a predicate type
// (`cosign attest --type`) to the in-toto predicate type URIs they stand
// for, as cosign maps them; policy-controller compares statements against
// the same URIs. Any other value is taken as a URI itself.
var predicateTypes = map[string]string{
	"custom":           "https://cosign.sigstore.dev/attestation/v1",
	"slsaprovenance":   "https://slsa.dev/provenance/v0.2",
	"slsaprovenance02": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance1":  "https://slsa.dev/provenance/v1",
	"spdx":             "https://spdx.dev/Document",
	"spdxjson":         "https://spdx.dev/Document",
	"cyclonedx":        "https://cyclonedx.org/bom",
	"link":             "https://in-toto.io/Link/v1",
	"vuln":             "https://cosign.sigstore.dev/attestation/vuln/v1",
	"openvex":          "https://openvex.dev/ns",
}

// PredicateTypeURI returns the predicate type URI a policy's predicateType
// means: a short name's URI, or the value itself.
func PredicateTypeURI(t string) string {
	if uri, ok := predicateTypes[t]; ok {
		return uri
	}
	return t
}
