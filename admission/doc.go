// Package admission decides whether a workload may run: it finds the
// images of the admitted object (package workload), matches them against
// the active policy set, verifies signatures (package imageverify) through
// a cache, evaluates ValidationPolicies, and serves the decision as a
// Kubernetes admission webhook (/validate, /mutate).
//
// The active policies and their bundle's provenance sit behind one
// atomic.Pointer (Policies): a swap never blocks a request, and a request
// sees one bundle from start to end.
package admission
