package tufclient

import (
	"time"

	"ward.dev/ward/bundle/tuflayout"
)

// Target is an environment's bundle that passed TUF verification. Only
// this package constructs one.
type Target struct {
	env         string
	data        []byte
	digest      string
	custom      tuflayout.Custom
	roleVersion int64
	expires     time.Time
	trustUntil  time.Time
}

// Env is the environment the bundle was verified for.
func (t *Target) Env() string { return t.env }

// Bytes is the verified bundle. Callers must not modify it.
func (t *Target) Bytes() []byte { return t.data }

// Digest is "sha256:<hex>" of Bytes.
func (t *Target) Digest() string { return t.digest }

// Custom is the target's signed custom fields (version, commit, ...).
func (t *Target) Custom() tuflayout.Custom { return t.custom }

// RoleVersion is the version of the environment role that listed it.
func (t *Target) RoleVersion() int64 { return t.roleVersion }

// Expires is when that role's metadata expires.
func (t *Target) Expires() time.Time { return t.expires }

// TrustUntil is when the first of the metadata that vouches for the bundle
// (timestamp, snapshot, targets, the environment's role) expires: past it,
// the bundle is no longer known to be current.
func (t *Target) TrustUntil() time.Time { return t.trustUntil }
