package policies

import (
	"fmt"
	"strings"
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
			if a.Source != nil && len(a.Source.PullSecrets) > 0 {
				ref.Field = "source.signaturePullSecrets"
				ref.What = "Secrets " + strings.Join(a.Source.PullSecrets, ", ") + " of the admitted workload's namespace (credentials to read signatures)"
				out = append(out, ref)
			}
		}
	}
	return out
}
