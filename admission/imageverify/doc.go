// Package imageverify checks that a container image, named by digest, is
// signed as a policy authority requires. It reads both signature formats
// cosign writes: the legacy "sha256-<hex>.sig" tag and Sigstore bundles
// stored as OCI referrers (found through the referrers API or its tag-schema
// fallback), and attestations in both formats too. Every signature is bound
// to the image digest (claim verification).
//
// Registry reads are bounded (each response body) and follow the caller's
// context deadline; registry trouble is reported as ErrUnavailable so that
// callers can tell "not signed" from "could not ask".
package imageverify
