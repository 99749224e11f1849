// Package bundle is ward's policy bundle: the deterministic build of a
// policy folder into a gzip'd tar, the reader that treats a bundle as
// hostile input, and the Verified type that only the TUF verification path
// can construct.
//
// A bundle holds manifest.json and the policy documents under policies/.
// Building the same commit twice, on any machine, gives the same bytes and
// so the same sha256: entries are sorted, times fixed to the commit time,
// owners and modes fixed, and the gzip header carries no name or time.
package bundle
