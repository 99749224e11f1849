package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"ward.dev/ward/admission"
	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/policies"
)

// abandonGrace is how long past its timeout (at most the timeout again) a
// sync's work may take to notice before Sync gives up waiting for it and
// reports the timeout.
const abandonGrace = 5 * time.Second

// Sync runs one sync of the named source: fetch, verify, unpack, compile,
// swap. On failure nothing is swapped in and the error (an *Error) is also
// recorded in the status. The whole sync, fetches included, is held to
// the spec's timeout.
func (s *Syncer) Sync(ctx context.Context, name string) error {
	s.mu.Lock()
	token := s.running[name]
	s.mu.Unlock()
	if token == nil {
		return fmt.Errorf("no policy source %q", name)
	}
	// One sync of a source at a time; wait for the one before only while
	// ctx lasts (a sync abandoned at its timeout may still hold it).
	select {
	case token <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	release := func() { <-token }
	sp, trust, requested, ok := s.syncSpec(name) // read holding the token: the spec it runs with
	if !ok {
		release()
		return fmt.Errorf("no policy source %q", name)
	}
	if isBlocked(sp) {
		release()
		return &Error{Reason: ReasonInvalidSpec, Err: errors.New(string(sp.Source.(blocked)))}
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("source", name, "env", sp.Env)
	ctx, cancel := context.WithTimeout(ctx, sp.Timeout)
	defer cancel()
	start := s.now()
	type result struct {
		st  *admission.State
		a   *Applied
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer release()
		st, a, err := s.fetchAndVerify(ctx, sp)
		done <- result{st, a, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Give the work a moment to return on its own; past that, report
		// the timeout and leave it: it holds the token until it returns,
		// and what it finds is never applied.
		grace := time.NewTimer(min(abandonGrace, sp.Timeout))
		select {
		case r = <-done:
			grace.Stop()
		case <-grace.C:
			r.err = fmt.Errorf("the sync did not finish within its timeout of %s: %w", sp.Timeout, context.DeadlineExceeded)
			go func() { <-done }()
		}
	}
	if r.err != nil {
		var se *Error
		if !errors.As(r.err, &se) {
			se = &Error{Reason: ReasonFetchFailed, Err: r.err}
		}
		if errors.Is(r.err, context.Canceled) && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return se // stopped, not failed
		}
		s.failed(sp, trust, requested, se, start, log)
		return se
	}
	s.apply(sp, trust, requested, r.st, r.a, start, log)
	return nil
}

// syncSpec returns what a sync of the source starts from: the spec, the
// trust generation and the reconcile request it answers.
func (s *Syncer) syncSpec(name string) (Spec, uint64, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.sources[name]
	if !ok {
		return Spec{}, 0, "", false
	}
	return src.spec, src.trust, src.requested, true
}

// fetchAndVerify runs the checklist; any failure leaves everything as it
// was.
func (s *Syncer) fetchAndVerify(ctx context.Context, sp Spec) (*admission.State, *Applied, error) {
	snap, err := sp.Source.Open(ctx)
	if err != nil {
		return nil, nil, &Error{Reason: ReasonFetchFailed, Err: fmt.Errorf("failed to fetch %s: %w", sp.Source, err)}
	}
	if _, err := s.checkTrust(sp); err != nil {
		return nil, nil, err
	}
	return s.verify(ctx, sp, snap, s.now, snap.Revision())
}

// verify reads env's bundle through the pinned root from f, unpacks and
// compiles it.
func (s *Syncer) verify(ctx context.Context, sp Spec, f tufclient.Fetcher, now func() time.Time, revision string) (*admission.State, *Applied, error) {
	client, err := tufclient.New(sp.Root, f, s.sourceDir(sp.Name), tufclient.WithClock(now))
	if err != nil {
		return nil, nil, &Error{Reason: ReasonVerificationFailed, Err: err}
	}
	target, err := client.Update(ctx, sp.Env)
	if err != nil {
		reason := ReasonVerificationFailed
		switch {
		case errors.Is(err, tufclient.ErrExpired):
			reason = ReasonMetadataExpired
		case errors.Is(err, tufclient.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			reason = ReasonFetchFailed
		}
		return nil, nil, &Error{Reason: reason, Err: err}
	}
	b, err := bundle.Open(target)
	if err != nil {
		return nil, nil, &Error{Reason: ReasonBundleInvalid, Err: err}
	}
	set := s.compiled(sp.Name, b.Digest(), b.Version())
	if set == nil {
		if set, err = policies.Compile(b.Policies(), policies.WithRemoteTrustRoots(ctx, s.remotes), policies.WithParseCache(s.parseCache(sp.Name))); err != nil {
			return nil, nil, &Error{Reason: ReasonPoliciesInvalid, Err: fmt.Errorf("failed to compile the policies of %s v%d: %w", b.Env(), b.Version(), err)}
		}
	}
	a := &Applied{Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit(), Policies: set.Len(), Revision: revision, VerifiedAt: now(), TrustUntil: b.TrustUntil(),
		TrustRoots: set.RemoteTrustRoots()}
	if until := set.RemoteTrustUntil(); !until.IsZero() && (a.TrustUntil.IsZero() || until.Before(a.TrustUntil)) {
		// Trust material from a mirror is vouched for until its metadata
		// expires: past it the bundle counts as expired (onExpiry).
		a.TrustUntil = until
	}
	for _, r := range set.ClusterReferences() {
		a.ClusterReferences = append(a.ClusterReferences, r.String())
	}
	prov := admission.Provenance{Source: sp.Name, Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit()}
	return admission.NewState(set, prov), a, nil
}

// parseCache is the source's cache of decoded policy documents; nil for a
// source removed meanwhile.
func (s *Syncer) parseCache(name string) *policies.ParseCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src := s.sources[name]; src != nil {
		return &src.parsed
	}
	return nil
}

// compiled is the set compiled before for the same bundle (digest and
// version), when it can stand for a new compile: none of its trust
// material comes from a mirror, which may have moved since. A sync that
// finds nothing new then costs verifying metadata, not compiling again.
func (s *Syncer) compiled(name, digest string, version int64) *policies.Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.sources[name]
	if src == nil || src.verified == nil || src.applied == nil || src.applied.Digest != digest || src.applied.Version != version ||
		src.verified.Set.RemoteTrustRoots() != "" {
		return nil
	}
	return src.verified.Set
}

// apply records a verified sync: a new bundle (or one that had expired) is
// swapped in.
func (s *Syncer) apply(sp Spec, trust uint64, requested string, st *admission.State, a *Applied, start time.Time, log logr.Logger) {
	swapped, current := false, false
	s.change(sp.Name, func(src *sourceState) bool {
		if src.trust != trust { // re-trusted or removed meanwhile
			return false
		}
		current = true
		prev := src.applied
		swapped = prev == nil || prev.Digest != a.Digest || prev.Version != a.Version || prev.Expired || prev.TrustRoots != a.TrustRoots
		if swapped {
			a.AppliedAt = s.now()
			src.verified = st
		} else {
			a.AppliedAt = prev.AppliedAt
			// The set compiled before stays: requests keep their cache.
		}
		src.applied = a
		src.lastAttempt, src.lastError, src.lastReason = start, "", ""
		src.syncs++
		src.synced, src.handled = sp.Generation, requested
		return true
	})
	if !current {
		return
	}
	if err := s.persist(sp.Name, a); err != nil {
		log.Error(err, "failed to persist the applied bundle")
	}
	if swapped {
		log.Info("policies swapped in", "state", StateEnforcing, "version", a.Version, "digest", a.Digest, "commit", a.Commit, "policies", a.Policies, "remoteTrustRoots", a.TrustRoots)
		for _, r := range st.Set.ClusterReferences() {
			log.Info("a policy reads from the cluster, outside the bundle's signatures", "version", a.Version, "file", r.File, "policy", r.Policy, "authority", r.Authority, "field", r.Field, "reads", r.What)
		}
	}
	s.metrics.sync(sp.Name, "", s.now().Sub(start), swapped)
	if swapped && s.onSwap != nil { // last: the swap is recorded everywhere first
		s.onSwap()
	}
}

// failed records a refused sync. Expired metadata, or a source that cannot
// be asked past the time the metadata it gave expires: either way the
// bundle is not known to be current any more, and onExpiry applies.
func (s *Syncer) failed(sp Spec, trust uint64, requested string, se *Error, start time.Time, log logr.Logger) {
	var state, msg string
	s.change(sp.Name, func(src *sourceState) bool {
		if src.trust != trust { // re-trusted or removed meanwhile
			return false
		}
		src.lastAttempt, src.lastError, src.lastReason = start, se.Error(), se.Reason
		src.syncs++
		src.failures++
		src.synced, src.handled = sp.Generation, requested
		src.expireAt(s.now(), se.Reason == ReasonMetadataExpired)
		state, msg = src.state()
		return true
	})
	log.Info("sync refused", "reason", se.Reason, "error", se.Error(), "state", state, "enforced", msg)
	s.metrics.sync(sp.Name, se.Reason, s.now().Sub(start), false)
}

func (s *Syncer) sourceDir(name string) string { return filepath.Join(s.stateDir, "sources", name) }

// trustFile records what a source's state folder was verified under.
const trustFile = "trust.json"

// checkTrust clears a source's state folder when it was built under
// another root, repository or environment: what was verified for one is
// nothing for the other (a rotated-away root must not stay trusted). It
// reports whether the folder was kept.
func (s *Syncer) checkTrust(sp Spec) (bool, error) {
	dir := s.sourceDir(sp.Name)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", sp.Source.String(), sp.Env)
	h.Write(sp.Root)
	want := hex.EncodeToString(h.Sum(nil))
	got, err := os.ReadFile(filepath.Join(dir, trustFile))
	if err == nil && string(got) == want {
		return true, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	return false, os.WriteFile(filepath.Join(dir, trustFile), []byte(want), 0o600)
}

// persist records the applied bundle, so that a restart can serve it.
func (s *Syncer) persist(name string, a *Applied) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.sourceDir(name), "applied.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Restore serves each source's persisted bundle, verified again from the
// persisted metadata through the pinned root. Metadata that has expired
// since is verified at the time it last verified and marked expired:
// served with OnExpiryKeep, every image denied with OnExpiryDenyAll.
func (s *Syncer) Restore(ctx context.Context) {
	for _, name := range s.Sources() {
		s.restore(ctx, name)
	}
}

// restore serves one source's persisted bundle (see Restore).
func (s *Syncer) restore(ctx context.Context, name string) {
	s.mu.Lock()
	token := s.running[name]
	s.mu.Unlock()
	if token == nil {
		return
	}
	select {
	case token <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-token }()
	sp, trust, _, ok := s.syncSpec(name)
	if !ok || isBlocked(sp) {
		return
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("source", sp.Name, "env", sp.Env)
	if kept, err := s.checkTrust(sp); err != nil || !kept {
		return // nothing persisted under this trust
	}
	data, err := os.ReadFile(filepath.Join(s.sourceDir(sp.Name), "applied.json"))
	if err != nil {
		return
	}
	var prev Applied
	if err := json.Unmarshal(data, &prev); err != nil {
		log.Error(err, "ignoring a corrupt applied.json")
		return
	}
	f := stateFetcher{dir: s.sourceDir(sp.Name)}
	st, a, err := s.verify(ctx, sp, f, s.now, prev.Revision)
	expired := false
	if err != nil && errors.Is(err, tufclient.ErrExpired) {
		// Verified as of when it last verified, then marked expired:
		// onExpiry decides what is enforced.
		expired = true
		at := prev.VerifiedAt
		st, a, err = s.verify(ctx, sp, f, func() time.Time { return at }, prev.Revision)
	}
	if err == nil && a.Digest != prev.Digest {
		err = fmt.Errorf("the persisted metadata names %s, the applied bundle was %s", a.Digest, prev.Digest)
	}
	if err != nil {
		log.Error(err, "the persisted bundle does not verify; waiting for the source", "state", StatePending)
		return
	}
	a.Expired = expired
	a.AppliedAt = s.now()
	if expired {
		a.VerifiedAt = prev.VerifiedAt
	}
	var state string
	s.change(sp.Name, func(src *sourceState) bool {
		if src.trust != trust || src.applied != nil {
			return false
		}
		src.verified, src.applied = st, a
		state, _ = src.state()
		return true
	})
	if state != "" {
		log.Info("serving the persisted bundle", "state", state, "version", a.Version, "digest", a.Digest)
	}
}

// stateFetcher serves a source's own persisted metadata as the repository,
// so that the TUF client verifies it again without the network. It has no
// newer roots, and targets come from the client's cache.
type stateFetcher struct{ dir string }

func (f stateFetcher) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	dir, file := filepath.Split(filepath.FromSlash(path))
	if filepath.Clean(dir) != tuflayout.MetadataDir {
		return nil, tufclient.ErrNotFound
	}
	name := file
	if v, rest, ok := strings.Cut(file, "."); ok && isDigits(v) {
		if rest == "root.json" {
			return nil, tufclient.ErrNotFound
		}
		name = rest
	}
	return tufclient.DirFetcher{Dir: f.dir}.Fetch(ctx, tuflayout.MetadataDir+"/"+name, maxLength)
}

func isDigits(s string) bool {
	return s != "" && !slices.ContainsFunc([]rune(s), func(r rune) bool { return r < '0' || r > '9' })
}
