// Package policies parses, validates and compiles ward's policy documents
// into an immutable Set that the admission webhook consults.
//
// Two kinds exist (apiVersion policy.ward.dev/v1): ImagePolicy, whose field
// names follow sigstore policy-controller's ClusterImagePolicy, and
// ValidationPolicy, CEL rules over the admitted object in the manner of
// Kubernetes' ValidatingAdmissionPolicy. A third, optional kind, Settings,
// holds bundle-wide defaults such as what happens to an image that no
// ImagePolicy matches (denied unless the bundle says otherwise).
//
// Compile checks every document and reports every problem with the file,
// the document and the field; CEL is compiled once per Set and evaluated
// with a cost limit. Image globs are indexed by their literal leading path
// segments, so finding the policies of an image costs about the same with
// 10 or 10,000 policies.
//
// The package imports no Kubernetes client or controller code: it is data in,
// a Set out.
package policies
