// Package tufclient verifies ward's TUF repositories on the client side,
// on go-tuf v2's updater: from a pinned root, through any transport that
// implements Fetcher, it refreshes root → timestamp → snapshot → targets →
// the environment's role, downloads the environment's bundle with its
// signed length and hash, and hands out a Target that only this package
// can construct.
//
// The trusted metadata is persisted in a state directory, so a restart
// does not forget what was trusted: a lower version of any role is refused
// (rollback), and so is a bundle version lower than the one last accepted
// for the environment. The reference time for expiry is explicit (an
// injected clock). Every refusal is a *VerifyError whose Kind says the
// family (ErrRollback, ErrExpired, ErrSignature, ...).
package tufclient
