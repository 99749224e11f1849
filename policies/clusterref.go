package policies

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// ClusterReference is a policy's reference to an object in the cluster
// (a Secret): what it points at is read at admission time, outside the
// bundle's signatures. ward check, the sync log and PolicySource status say
// so; a Settings document with clusterReferences: refuse refuses them.
type ClusterReference struct {
	File      string
	Kind      string
	Policy    string
	Authority string
	// Field is the field that makes the reference.
	Field string
	// What is read, and from where.
	What string
}

// String is one line naming the policy, the field and what is read.
func (r ClusterReference) String() string {
	return fmt.Sprintf("%s: %s %q, authority %s: %s reads %s from the cluster, outside the bundle's signatures", r.File, r.Kind, r.Policy, r.Authority, r.Field, r.What)
}

// ClusterReferences lists the set's references to cluster objects, in
// policy order.
func (s *Set) ClusterReferences() []ClusterReference {
	var out []ClusterReference
	for _, p := range s.images {
		for _, a := range p.Authorities {
			ref := ClusterReference{File: p.File, Kind: p.Kind, Policy: p.Name, Authority: a.Name}
			if name := a.SecretRef(); name != "" {
				ref.Field, ref.What = "key.secretRef", "Secret "+name+" of the controller's namespace (the public key)"
				if a.Keyless != nil {
					ref.Field, ref.What = "keyless.ca-cert.secretRef", "Secret "+name+" of the controller's namespace (the CA certificates)"
				}
				if n := a.Notation; n != nil {
					ref.Field, ref.What = "notation.trustStore."+n.SecretStore+".secretRef", "Secret "+name+" of the controller's namespace (the "+n.SecretStore+" trust store)"
				}
				out = append(out, ref)
			}
			if a.Source != nil && len(a.Source.PullSecrets) > 0 {
				ref.Field = "source.signaturePullSecrets"
				ref.What = "Secrets " + strings.Join(a.Source.PullSecrets, ", ") + " of the admitted workload's namespace (credentials to read signatures)"
				out = append(out, ref)
			}
		}
	}
	return out
}

// SecretRef is the name of the Secret the authority's key, CA
// certificates or Notation trust store is read from at admission time; ""
// for none.
func (a *CompiledAuthority) SecretRef() string {
	switch {
	case a.Key != nil:
		return a.Key.SecretRef
	case a.Keyless != nil:
		return a.Keyless.CASecretRef
	case a.Notation != nil:
		return a.Notation.SecretRef
	}
	return ""
}

// MaxSecretBytes bounds the data of a Secret a key is read from.
const MaxSecretBytes = 64 << 10

// WithSecret returns a copy of the authority with its key or CA
// certificates read from the data of the Secret it names (which, as
// policy-controller requires, has exactly one entry). The copy's
// Fingerprint covers the content, so cached verdicts do not outlive a
// rotated key. The error is one line.
func (a *CompiledAuthority) WithSecret(data map[string][]byte) (*CompiledAuthority, error) {
	name := a.SecretRef()
	switch {
	case name == "":
		return a, nil
	case len(data) == 0:
		return nil, fmt.Errorf("Secret %s has no data", name)
	case len(data) > 1:
		return nil, fmt.Errorf("Secret %s has %d data entries (%s); one is read", name, len(data), strings.Join(slices.Sorted(maps.Keys(data)), ", "))
	}
	var value []byte
	for _, v := range data {
		value = v
	}
	if len(value) > MaxSecretBytes {
		return nil, fmt.Errorf("Secret %s holds %d bytes, over the limit of %d", name, len(value), MaxSecretBytes)
	}
	out := *a
	sum := sha256.Sum256(value)
	out.Fingerprint = fmt.Sprintf("%s+secret:%x", a.Fingerprint, sum[:8])
	if a.Notation != nil {
		n, err := a.Notation.withSecret(value)
		if err != nil {
			return nil, err
		}
		out.Notation = n
		return &out, nil
	}
	if a.Key != nil {
		pk, err := cryptoutils.UnmarshalPEMToPublicKey(value)
		if err != nil {
			return nil, fmt.Errorf("Secret %s does not hold a PEM public key", name)
		}
		k := *a.Key
		k.Public, k.SecretRef = pk, ""
		out.Key = &k
		return &out, nil
	}
	roots, inter, err := caChain(value)
	if err != nil {
		return nil, fmt.Errorf("Secret %s: %w", name, err)
	}
	kl := *a.Keyless
	kl.Roots, kl.Intermediates, kl.CASecretRef = roots, inter, ""
	out.Keyless = &kl
	return &out, nil
}
