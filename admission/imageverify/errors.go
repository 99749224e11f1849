package imageverify

import "errors"

// Families of verification failure. Errors returned by Verify wrap one.
var (
	// ErrNoSignatures: the image has no signature (or attestation) in
	// either format.
	ErrNoSignatures = errors.New("no signatures found")
	// ErrNoMatch: signatures exist but none verifies for the authority
	// (wrong key or identity, bound to another digest, bad log entry).
	ErrNoMatch = errors.New("no signature verified")
	// ErrAttestation: attestations exist but a required one is missing or
	// its condition failed.
	ErrAttestation = errors.New("attestation check failed")
	// ErrUnavailable: the registry could not be asked (down, slow, 5xx,
	// garbage, over the size limit, out of time).
	ErrUnavailable = errors.New("registry unavailable")
	// ErrConfig: the authority cannot be used (a KMS key that cannot be
	// loaded).
	ErrConfig = errors.New("authority unusable")
)

// unavailable is an inner ErrUnavailable whose message does not repeat the
// family name (the outer error says it once).
type unavailable string

func (e unavailable) Error() string        { return string(e) }
func (e unavailable) Is(target error) bool { return target == ErrUnavailable }

// noSignatures and noMatch are inner ErrNoSignatures and ErrNoMatch
// whose messages say it in their own words.
type (
	noSignatures string
	noMatch      string
)

func (e noSignatures) Error() string        { return string(e) }
func (e noSignatures) Is(target error) bool { return target == ErrNoSignatures }
func (e noMatch) Error() string             { return string(e) }
func (e noMatch) Is(target error) bool      { return target == ErrNoMatch }
