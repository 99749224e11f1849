// Package tufrepo is the signing side of ward's TUF repositories: it
// creates a repository (root, targets, snapshot, timestamp and one
// delegated role per environment, consistent snapshots), publishes a
// bundle into an environment, promotes one environment's bundle to another
// over the same bytes, re-signs an earlier bundle as a new, higher version
// (rollback), refreshes the timestamp and rotates keys through a chained
// root.
//
// A Repo works on a directory in the layout of package tuflayout. Every
// operation first loads and verifies the whole repository (signatures and
// thresholds through the root, versions that agree, target hashes), so a
// corrupt or tampered repository is named before anything is signed, and
// writes timestamp.json last, so a reader sees either the old or the new
// state.
package tufrepo
