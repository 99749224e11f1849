package tufrepo

import (
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/tuflayout"
)

// resign signs the targets and environment roles named in changed (their
// content and version already set by the caller), then a new snapshot that
// lists them and a new timestamp that lists the snapshot. It returns the
// files to write, timestamp.json last.
func (r *Repo) resign(s *state, changed map[string]bool, signers Signers, now time.Time) ([]file, error) {
	var files []file
	roleMeta := map[string]*metadata.MetaFiles{}
	for _, env := range sortedKeys(s.envs) {
		if !changed[env] {
			continue
		}
		del, err := s.envRole(env)
		if err != nil {
			return nil, err
		}
		md := s.envs[env]
		if err := sign(md, env, del.KeyIDs, del.Threshold, signers[env]); err != nil {
			return nil, err
		}
		data, err := encode(md)
		if err != nil {
			return nil, err
		}
		files = append(files, file{tuflayout.VersionedMetadata(env, md.Signed.Version), data})
		roleMeta[env+".json"] = metadata.MetaFile(md.Signed.Version)
	}
	if changed[tuflayout.Targets] {
		role := s.root.Signed.Roles[tuflayout.Targets]
		if err := sign(s.targets, tuflayout.Targets, role.KeyIDs, role.Threshold, signers[tuflayout.Targets]); err != nil {
			return nil, err
		}
		data, err := encode(s.targets)
		if err != nil {
			return nil, err
		}
		files = append(files, file{tuflayout.VersionedMetadata(tuflayout.Targets, s.targets.Signed.Version), data})
		roleMeta["targets.json"] = metadata.MetaFile(s.targets.Signed.Version)
	}
	more, err := r.resignSnapshot(s, roleMeta, signers, now)
	if err != nil {
		return nil, err
	}
	return append(files, more...), nil
}

// resignSnapshot writes a new snapshot with roleMeta merged in, then a new
// timestamp.
func (r *Repo) resignSnapshot(s *state, roleMeta map[string]*metadata.MetaFiles, signers Signers, now time.Time) ([]file, error) {
	snap := metadata.Snapshot(now.Add(r.expiry.Snapshot))
	if s.snapshot != nil {
		snap.Signed.Version = s.snapshot.Signed.Version + 1
		for k, v := range s.snapshot.Signed.Meta {
			snap.Signed.Meta[k] = v
		}
	}
	for k, v := range roleMeta {
		snap.Signed.Meta[k] = v
	}
	role := s.root.Signed.Roles[tuflayout.Snapshot]
	if err := sign(snap, tuflayout.Snapshot, role.KeyIDs, role.Threshold, signers[tuflayout.Snapshot]); err != nil {
		return nil, err
	}
	data, err := encode(snap)
	if err != nil {
		return nil, err
	}
	s.snapshot = snap
	files := []file{{tuflayout.VersionedMetadata(tuflayout.Snapshot, snap.Signed.Version), data}}
	ts, err := r.resignTimestamp(s, metaFile(snap.Signed.Version, data), signers, now)
	if err != nil {
		return nil, err
	}
	return append(files, ts), nil
}

// resignTimestamp signs a new timestamp listing snapMeta.
func (r *Repo) resignTimestamp(s *state, snapMeta *metadata.MetaFiles, signers Signers, now time.Time) (file, error) {
	ts := metadata.Timestamp(now.Add(r.expiry.Timestamp))
	if s.timestamp != nil {
		ts.Signed.Version = s.timestamp.Signed.Version + 1
	}
	ts.Signed.Meta["snapshot.json"] = snapMeta
	role := s.root.Signed.Roles[tuflayout.Timestamp]
	if err := sign(ts, tuflayout.Timestamp, role.KeyIDs, role.Threshold, signers[tuflayout.Timestamp]); err != nil {
		return file{}, err
	}
	data, err := encode(ts)
	if err != nil {
		return file{}, err
	}
	s.timestamp = ts
	return file{tuflayout.TimestampMetadata, data}, nil
}

// nextEnv returns a new, unsigned environment role one version above the
// current one, listing tf as the environment's bundle (or nothing).
func (r *Repo) nextEnv(s *state, env string, tf *metadata.TargetFiles, now time.Time) *metadata.Metadata[metadata.TargetsType] {
	md := metadata.Targets(now.Add(r.expiry.Env))
	if cur := s.envs[env]; cur != nil {
		md.Signed.Version = cur.Signed.Version + 1
	}
	if tf != nil {
		md.Signed.Targets[tuflayout.TargetPath(env)] = tf
	}
	return md
}

func envMissing(env string) error {
	return fmt.Errorf("environment %s has no bundle yet (publish one first: ward publish --env %s)", env, env)
}
