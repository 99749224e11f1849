package tufclient

import (
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The families of a refused update. A *VerifyError matches one of them
// with errors.Is (and ErrTooLarge, ErrNotFound from fetcher.go).
var (
	// ErrRollback: a role or bundle version lower than the trusted one, or
	// a version that does not match what the role above lists.
	ErrRollback = errors.New("rollback or version mismatch refused")
	// ErrExpired: metadata past its expiry at the reference time (freeze).
	ErrExpired = errors.New("metadata expired")
	// ErrSignature: signatures missing, invalid or below the threshold.
	ErrSignature = errors.New("signatures do not meet the threshold")
	// ErrMismatch: bytes that do not match the signed length or hash.
	ErrMismatch = errors.New("length or hash does not match the signed metadata")
	// ErrUnavailable: the repository could not be read.
	ErrUnavailable = errors.New("repository unavailable")
	// ErrInvalid: metadata or a target that breaks ward's layout or TUF's rules.
	ErrInvalid = errors.New("invalid metadata")
	// ErrUnknownEnv: the repository delegates no role for the environment
	// asked for (the error lists the ones it has).
	ErrUnknownEnv = errors.New("no such environment")
)

// VerifyError is a refused update: its family, the environment (when one
// was asked for) and the cause.
type VerifyError struct {
	Kind error
	Env  string
	Err  error
}

func (e *VerifyError) Error() string {
	if e.Env != "" {
		return fmt.Sprintf("failed to verify environment %s: %v: %v", e.Env, e.Kind, e.Err)
	}
	return fmt.Sprintf("failed to verify repository: %v: %v", e.Kind, e.Err)
}

// Is matches the family.
func (e *VerifyError) Is(target error) bool { return e.Kind == target }

// Unwrap returns the cause, so go-tuf's own error types match too.
func (e *VerifyError) Unwrap() error { return e.Err }

// classify maps go-tuf's and the fetchers' errors to a family.
func classify(env string, err error) error {
	if err == nil {
		return nil
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return err
	}
	kind := ErrInvalid
	var (
		badVersion   *metadata.ErrBadVersionNumber
		eqVersion    *metadata.ErrEqualVersionNumber
		expired      *metadata.ErrExpiredMetadata
		unsigned     *metadata.ErrUnsignedMetadata
		lenHash      *metadata.ErrLengthOrHashMismatch
		dlLen        *metadata.ErrDownloadLengthMismatch
		dlHTTP       *metadata.ErrDownloadHTTP
		downloadFail *metadata.ErrDownload
	)
	switch {
	case errors.As(err, &badVersion), errors.As(err, &eqVersion):
		kind = ErrRollback
	case errors.As(err, &expired):
		kind = ErrExpired
	case errors.As(err, &unsigned):
		kind = ErrSignature
	case errors.As(err, &lenHash):
		kind = ErrMismatch
	case errors.Is(err, ErrTooLarge), errors.As(err, &dlLen):
		kind = ErrTooLarge
	case errors.As(err, &dlHTTP):
		if dlHTTP.StatusCode == 404 {
			kind = ErrNotFound
		} else {
			kind = ErrUnavailable
		}
	case errors.Is(err, ErrNotFound):
		kind = ErrNotFound
	case errors.As(err, &downloadFail), errors.Is(err, errFetch):
		kind = ErrUnavailable
	}
	return &VerifyError{Kind: kind, Env: env, Err: err}
}

// errFetch marks a transport failure that is not a missing file.
var errFetch = errors.New("fetch failed")
