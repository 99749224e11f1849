// Package source reads a TUF repository from where a PolicySource says it
// lives: a directory, a Git branch, or an OCI artifact. Each sync opens a
// Snapshot, a consistent view that the TUF client reads through the
// tufclient.Fetcher interface; the TUF client, not the source, decides
// what is trusted.
package source

import (
	"context"

	"ward.dev/ward/bundle/tufclient"
)

// Source opens snapshots of a TUF repository.
type Source interface {
	// Open fetches the repository's current state.
	Open(ctx context.Context) (Snapshot, error)
	// String describes the source without credentials.
	String() string
}

// Snapshot is one fetched state of a repository.
type Snapshot interface {
	tufclient.Fetcher
	// Revision names what was fetched: "main@sha1:<hash>" for Git,
	// "sha256:<hex>" for OCI, "" for a directory.
	Revision() string
}

// Dir is a repository in a local directory (air-gapped use, tests).
type Dir struct {
	Path string
}

// Open implements Source.
func (d Dir) Open(context.Context) (Snapshot, error) {
	return dirSnapshot{tufclient.DirFetcher{Dir: d.Path}}, nil
}

func (d Dir) String() string { return "dir " + d.Path }

type dirSnapshot struct{ tufclient.DirFetcher }

func (dirSnapshot) Revision() string { return "" }
