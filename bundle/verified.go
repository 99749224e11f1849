package bundle

import (
	"bytes"
	"fmt"
	"time"

	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
)

// Verified is a bundle that passed TUF verification for an environment and
// the reader's integrity checks. Its fields are unexported and Open is the
// only way to make one, so nothing downstream can compile bytes that TUF
// did not approve.
type Verified struct {
	contents   *Contents
	env        string
	custom     tuflayout.Custom
	trustUntil time.Time
}

// Open reads a TUF-verified target as a bundle and checks that the
// commit its signed metadata names is the one its manifest records.
func Open(t *tufclient.Target, opts ...ReadOption) (*Verified, error) {
	if t == nil {
		return nil, fmt.Errorf("no verified target")
	}
	c, err := Read(bytes.NewReader(t.Bytes()), opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to open the bundle of %s: %w", t.Env(), err)
	}
	custom := t.Custom()
	if custom.Commit != "" && custom.Commit != c.Manifest.Source.Commit {
		return nil, fmt.Errorf("failed to open the bundle of %s: signed metadata names commit %s, the manifest %s", t.Env(), custom.Commit, c.Manifest.Source.Commit)
	}
	return &Verified{contents: c, env: t.Env(), custom: custom, trustUntil: t.TrustUntil()}, nil
}

// Env is the environment the bundle was verified for.
func (v *Verified) Env() string { return v.env }

// Version is the bundle's version in its environment.
func (v *Verified) Version() int64 { return v.custom.Version }

// Digest is "sha256:<hex>" of the bundle bytes.
func (v *Verified) Digest() string { return v.contents.Digest }

// Commit is the policy commit the bundle was built from.
func (v *Verified) Commit() string { return v.contents.Manifest.Source.Commit }

// Custom is the signed custom fields of the bundle's target.
func (v *Verified) Custom() tuflayout.Custom { return v.custom }

// Manifest is the bundle's manifest.
func (v *Verified) Manifest() Manifest { return v.contents.Manifest }

// Policies returns the policy documents in manifest order: path and bytes.
// Callers must not modify the bytes.
func (v *Verified) Policies() []Document { return v.contents.Policies() }

// Policies returns the policy documents in manifest order: path and bytes.
// Callers must not modify the bytes.
func (c *Contents) Policies() []Document {
	out := make([]Document, 0, len(c.Manifest.Policies))
	for _, p := range c.Manifest.Policies {
		out = append(out, Document{Path: p.Path, Data: c.Files[p.Path]})
	}
	return out
}

// Document is one policy file of a bundle.
type Document struct {
	Path string
	Data []byte
}

// TrustUntil is when the metadata that vouched for the bundle starts to
// expire (see tufclient.Target.TrustUntil).
func (v *Verified) TrustUntil() time.Time { return v.trustUntil }
