package tufrepo

import (
	"crypto"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/tuflayout"
)

// Refreshed reports a timestamp refresh.
type Refreshed struct {
	// TimestampVersion and TimestampExpires describe the new timestamp.
	TimestampVersion int64     `json:"timestampVersion"`
	TimestampExpires time.Time `json:"timestampExpires"`
	// SnapshotRenewed is true when the snapshot was re-signed too because
	// less than half of its validity was left.
	SnapshotRenewed bool `json:"snapshotRenewed"`
	// Expiring lists roles that expire within 30 days and need their keys to
	// renew them ("root", "targets" or an environment).
	Expiring []string `json:"expiring,omitempty"`
}

// RefreshTimestamp signs a new timestamp (and snapshot, when it has less
// than half of its validity left). Run it on a schedule shorter than the
// timestamp expiry: clients refuse expired metadata.
func (r *Repo) RefreshTimestamp(signers Signers) (*Refreshed, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	now := r.now().UTC()
	out := &Refreshed{}
	var files []file
	if s.snapshot.Signed.Expires.Sub(now) < r.expiry.Snapshot/2 {
		if files, err = r.resignSnapshot(s, nil, signers, now); err != nil {
			return nil, err
		}
		out.SnapshotRenewed = true
	} else {
		snapData, err := r.read(tuflayout.VersionedMetadata(tuflayout.Snapshot, s.snapshot.Signed.Version))
		if err != nil {
			return nil, corrupt("%v", err)
		}
		ts, err := r.resignTimestamp(s, metaFile(s.snapshot.Signed.Version, snapData), signers, now)
		if err != nil {
			return nil, err
		}
		files = []file{ts}
	}
	if err := r.commit(files); err != nil {
		return nil, err
	}
	out.TimestampVersion = s.timestamp.Signed.Version
	out.TimestampExpires = s.timestamp.Signed.Expires
	soon := now.Add(30 * day)
	if s.root.Signed.Expires.Before(soon) {
		out.Expiring = append(out.Expiring, tuflayout.Root)
	}
	if s.targets.Signed.Expires.Before(soon) {
		out.Expiring = append(out.Expiring, tuflayout.Targets)
	}
	for _, env := range s.envNames() {
		if s.envs[env].Signed.Expires.Before(soon) {
			out.Expiring = append(out.Expiring, env)
		}
	}
	return out, nil
}

// KeyChange replaces the keys of one role and sets its threshold. A nil
// Keys keeps the role's keys; a zero Threshold keeps its threshold.
type KeyChange struct {
	Keys      []crypto.PublicKey
	Threshold int
}

// Rotated reports a rotation.
type Rotated struct {
	// RootVersion is the new root's version.
	RootVersion int64 `json:"rootVersion"`
	// Resigned lists the roles signed anew.
	Resigned []string `json:"resigned"`
}

// Rotate changes role keys and thresholds. Changes to root, targets,
// snapshot or timestamp make a new root, N+1.root.json, signed by the
// threshold of the old root's keys and of the new root's keys, so clients
// follow the chain; changes to an environment re-sign the targets role's
// delegation. Every role whose keys changed is re-signed with its new keys,
// then snapshot and timestamp. With no changes it re-signs the root as a
// new version, renewing its expiry.
//
// signers must hold, for root, the old and the new root keys needed for
// both thresholds; for every other changed role, its new keys; and
// targets' keys when an environment changes.
func (r *Repo) Rotate(changes map[string]KeyChange, signers Signers) (*Rotated, error) {
	s, err := r.load()
	if err != nil {
		return nil, err
	}
	now := r.now().UTC()
	oldRoot := s.root
	newRoot := metadata.Root()
	newRoot.Signed = oldRoot.Signed
	newRoot.Signed.Keys = maps.Clone(oldRoot.Signed.Keys)
	newRoot.Signed.Roles = map[string]*metadata.Role{}
	for name, role := range oldRoot.Signed.Roles {
		newRoot.Signed.Roles[name] = &metadata.Role{KeyIDs: slices.Clone(role.KeyIDs), Threshold: role.Threshold}
	}
	newRoot.Signed.Version = oldRoot.Signed.Version + 1
	newRoot.Signed.Expires = now.Add(r.expiry.Root)

	// changed names the targets and environment roles to sign anew.
	changed := map[string]bool{}
	var envs []string
	for _, name := range sortedKeys(changes) {
		if tuflayout.IsTopLevel(name) {
			if err := changeRootRole(newRoot, name, changes[name]); err != nil {
				return nil, err
			}
			// New snapshot and timestamp keys sign below in any case.
			changed[tuflayout.Targets] = changed[tuflayout.Targets] || name == tuflayout.Targets
			continue
		}
		if err := changeEnvRole(s, name, changes[name]); err != nil {
			return nil, err
		}
		envs = append(envs, name)
		changed[name], changed[tuflayout.Targets] = true, true
	}

	var files []file
	// The new root must satisfy the old root's threshold and its own.
	oldRole, newRole := oldRoot.Signed.Roles[tuflayout.Root], newRoot.Signed.Roles[tuflayout.Root]
	if err := sign(newRoot, tuflayout.Root, union(oldRole.KeyIDs, newRole.KeyIDs), 1, signers[tuflayout.Root]); err != nil {
		return nil, err
	}
	if err := oldRoot.VerifyDelegate(tuflayout.Root, newRoot); err != nil {
		return nil, fmt.Errorf("%w: the new root needs %d signature(s) from the current root keys %s: %v", ErrThreshold, oldRole.Threshold, shortAll(oldRole.KeyIDs), err)
	}
	if err := newRoot.VerifyDelegate(tuflayout.Root, newRoot); err != nil {
		return nil, fmt.Errorf("%w: the new root needs %d signature(s) from its new root keys %s: %v", ErrThreshold, newRole.Threshold, shortAll(newRole.KeyIDs), err)
	}
	rootBytes, err := encode(newRoot)
	if err != nil {
		return nil, err
	}
	files = append(files, file{tuflayout.VersionedMetadata(tuflayout.Root, newRoot.Signed.Version), rootBytes})
	s.root = newRoot

	out := &Rotated{RootVersion: newRoot.Signed.Version, Resigned: []string{tuflayout.Root}}
	if changed[tuflayout.Targets] {
		s.targets.Signed.Version++
		s.targets.Signed.Expires = now.Add(r.expiry.Targets)
		out.Resigned = append(out.Resigned, tuflayout.Targets)
	}
	for _, env := range envs {
		s.envs[env].Signed.Version++
		s.envs[env].Signed.Expires = now.Add(r.expiry.Env)
	}
	more, err := r.resign(s, changed, signers, now)
	if err != nil {
		return nil, err
	}
	out.Resigned = append(append(out.Resigned, envs...), tuflayout.Snapshot, tuflayout.Timestamp)
	if err := r.commit(append(files, more...)); err != nil {
		return nil, err
	}
	return out, nil
}

func changeRootRole(root *metadata.Metadata[metadata.RootType], role string, ch KeyChange) error {
	r := root.Signed.Roles[role]
	if ch.Keys != nil {
		for _, id := range slices.Clone(r.KeyIDs) {
			if err := root.Signed.RevokeKey(id, role); err != nil {
				return fmt.Errorf("failed to revoke key %s of %s: %w", short(id), role, err)
			}
		}
		for _, pub := range ch.Keys {
			k, err := metadata.KeyFromPublicKey(pub)
			if err != nil {
				return fmt.Errorf("failed to add a key to %s: %w", role, err)
			}
			if err := root.Signed.AddKey(k, role); err != nil {
				return fmt.Errorf("failed to add a key to %s: %w", role, err)
			}
		}
	}
	if ch.Threshold > 0 {
		r.Threshold = ch.Threshold
	}
	if len(r.KeyIDs) < r.Threshold {
		return fmt.Errorf("%w: role %s would have threshold %d but %d key(s)", ErrThreshold, role, r.Threshold, len(r.KeyIDs))
	}
	return nil
}

func changeEnvRole(s *state, env string, ch KeyChange) error {
	del, err := s.envRole(env)
	if err != nil {
		return err
	}
	if ch.Keys != nil {
		for _, id := range del.KeyIDs {
			if err := s.targets.Signed.RevokeKey(id, env); err != nil {
				return fmt.Errorf("failed to revoke key %s of %s: %w", short(id), env, err)
			}
		}
		// RevokeKey edits a copy of the role; read it again.
		if del, err = s.envRole(env); err != nil {
			return err
		}
		for _, pub := range ch.Keys {
			k, err := metadata.KeyFromPublicKey(pub)
			if err != nil {
				return fmt.Errorf("failed to add a key to %s: %w", env, err)
			}
			if err := s.targets.Signed.AddKey(k, env); err != nil {
				return fmt.Errorf("failed to add a key to %s: %w", env, err)
			}
		}
		if del, err = s.envRole(env); err != nil {
			return err
		}
	}
	if ch.Threshold > 0 {
		del.Threshold = ch.Threshold
	}
	if len(del.KeyIDs) < del.Threshold {
		return fmt.Errorf("%w: role %s would have threshold %d but %d key(s)", ErrThreshold, env, del.Threshold, len(del.KeyIDs))
	}
	return nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
