// Package syncer is the sync loop: for each policy source it fetches the
// TUF repository, verifies the environment's bundle through the pinned
// root, unpacks and compiles it, and swaps the combined policies of all
// sources into the webhook in one step. A bundle that fails anywhere is
// never swapped in: the last verified policies keep being enforced and the
// reason is reported in the source's status.
//
// Trusted metadata, accepted versions and the last applied bundle persist
// in the state directory; after a restart with the source unreachable the
// persisted bundle is verified again and served.
package syncer
