package source

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/internal/httpbound"
	"ward.dev/ward/policies"
)

// Media types of a TUF repository stored as an OCI artifact: one layer per
// file, titled by its path.
const (
	ArtifactType  = "application/vnd.ward.tuf.repository.v1"
	FileMediaType = "application/vnd.ward.tuf.file.v1"
	titleKey      = "org.opencontainers.image.title"
	// MaxManifestBytes bounds the artifact's manifest.
	MaxManifestBytes = 4 << 20
	// MaxOCIResponseBytes bounds any registry response (a bundle is at
	// most 32 MiB).
	MaxOCIResponseBytes = 64 << 20
)

// OCI is a TUF repository stored as an OCI artifact.
type OCI struct {
	// URL is oci://registry/repository:tag or …@sha256:….
	URL string
	// DockerConfig is a .dockerconfigjson for the registry (nil:
	// anonymous).
	DockerConfig []byte
	// CAPEM is a CA to trust for the registry (nil: the system's).
	CAPEM []byte
	// Insecure allows plain HTTP.
	Insecure bool
	// Keychain is used when DockerConfig is empty (the CLI passes the
	// user's Docker config); nil means anonymous.
	Keychain authn.Keychain
	// VerifyKey, when set, must have signed the artifact (cosign, either
	// format) before anything is read from it.
	VerifyKey crypto.PublicKey

	// last is the snapshot the previous Open read, with the small files
	// read from it: while the artifact's digest stays the same, its files
	// are the same bytes, and a sync that finds it unchanged reads them
	// from here.
	mu   sync.Mutex
	last *ociSnapshot
}

// maxCachedFile bounds the files a snapshot keeps for the next sync of
// the same artifact: metadata (timestamp.json is the one an idle sync
// reads), not bundles.
const maxCachedFile = 64 << 10

func (o *OCI) String() string { return "oci " + strings.TrimPrefix(o.URL, "oci://") }

func (o *OCI) ref() (name.Reference, error) {
	raw, ok := strings.CutPrefix(o.URL, "oci://")
	if !ok {
		return nil, fmt.Errorf("OCI URL %q: want oci://registry/repository:tag", o.URL)
	}
	var opts []name.Option
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(raw, opts...)
}

// remoteOptions are the registry options of this source.
func (o *OCI) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSHandshakeTimeout = 10 * time.Second
	base.ResponseHeaderTimeout = 30 * time.Second
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("the registry CA holds no PEM certificates")
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	kc := authn.Keychain(authn.NewMultiKeychain())
	if o.Keychain != nil {
		kc = o.Keychain
	}
	if len(o.DockerConfig) > 0 {
		k, err := dockerConfigKeychain(o.DockerConfig)
		if err != nil {
			return nil, err
		}
		kc = k
	}
	return []remote.Option{
		remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithTransport(&httpbound.Transport{Next: base, Max: MaxOCIResponseBytes}),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
	}, nil
}

// Open reads the artifact's manifest; files are read on demand. When the
// artifact is the one the previous Open read (its URL names that digest,
// or a HEAD of its tag answers it), nothing more is read: the previous
// snapshot, and the files read from it, stand. The TUF client still
// verifies them, against the clock, at every sync: an unchanged artifact
// is one whose timestamp goes on ageing.
func (o *OCI) Open(ctx context.Context) (Snapshot, error) {
	ref, err := o.ref()
	if err != nil {
		return nil, err
	}
	opts, err := o.remoteOptions(ctx)
	if err != nil {
		return nil, err
	}
	// One client for the whole sync: one API check and one token, not
	// one per request.
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	// Clipped: appending to the options (Fetch adds its context) must not
	// write into an array another snapshot shares.
	opts = slices.Clip(append(opts, remote.Reuse(puller)))
	o.mu.Lock()
	last := o.last
	o.mu.Unlock()
	if last != nil {
		current := ""
		if d, ok := ref.(name.Digest); ok {
			current = d.DigestStr()
		} else if head, err := remote.Head(ref, opts...); err == nil {
			current = head.Digest.String()
		} else if busy(err) {
			// Rate-limited or down: the GET would be refused too (and
			// retried), so do not ask twice.
			return nil, fmt.Errorf("failed to read %s: %w", ref, err)
		} // else: read the manifest, which says why
		if current == last.revision {
			return last.with(opts), nil
		}
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", ref, err)
	}
	if desc.Size > MaxManifestBytes || len(desc.Manifest) > MaxManifestBytes {
		return nil, fmt.Errorf("the manifest of %s is over %d bytes", ref, MaxManifestBytes)
	}
	if o.VerifyKey != nil {
		if err := o.verifyArtifact(ctx, ref.Context().Digest(desc.Digest.String())); err != nil {
			return nil, err
		}
	}
	m, err := v1.ParseManifest(strings.NewReader(string(desc.Manifest)))
	if err != nil {
		return nil, fmt.Errorf("%s is not an image manifest: %w", ref, err)
	}
	files := map[string]v1.Descriptor{}
	for _, l := range m.Layers {
		title := l.Annotations[titleKey]
		if title == "" {
			continue
		}
		files[title] = l
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no files titled by path (not a TUF repository pushed by ward)", ref)
	}
	snap := &ociSnapshot{repo: ref.Context(), files: files, opts: opts, revision: desc.Digest.String(), read: &readFiles{data: map[string][]byte{}}}
	if last != nil && last.revision == snap.revision {
		snap.read = last.read // the HEAD failed, the artifact had not changed
	}
	o.mu.Lock()
	o.last = snap.with(nil) // kept without this sync's client and credentials
	o.mu.Unlock()
	return snap, nil
}

// busy reports whether a registry error says it is rate-limiting or
// failing (429, 5xx), not that a HEAD is not understood.
func busy(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500)
}

// verifyArtifact checks the artifact's cosign signature with VerifyKey.
func (o *OCI) verifyArtifact(ctx context.Context, d name.Digest) error {
	var vopts []imageverify.Option
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(o.CAPEM)
		vopts = append(vopts, imageverify.WithRootCAs(pool))
	}
	kc := o.Keychain
	if len(o.DockerConfig) > 0 {
		k, err := dockerConfigKeychain(o.DockerConfig)
		if err != nil {
			return err
		}
		kc = k
	}
	a := &policies.CompiledAuthority{Name: "artifact-key", Key: &policies.PublicKey{Public: o.VerifyKey, Hash: crypto.SHA256}}
	if _, err := imageverify.New(vopts...).Verify(ctx, d, a, kc); err != nil {
		return fmt.Errorf("the artifact %s is not signed by the key the source names: %w", d.DigestStr(), err)
	}
	return nil
}

type ociSnapshot struct {
	repo     name.Repository
	files    map[string]v1.Descriptor
	opts     []remote.Option
	revision string
	// read keeps the small files read, for later snapshots of the same
	// artifact.
	read *readFiles
}

// readFiles are files read from one artifact, by path; each was checked
// against its layer digest when read.
type readFiles struct {
	mu   sync.Mutex
	data map[string][]byte
}

// with is the snapshot for another sync of the same artifact, reading
// with that sync's options.
func (s *ociSnapshot) with(opts []remote.Option) *ociSnapshot {
	out := *s
	out.opts = opts
	return &out
}

func (s *ociSnapshot) Revision() string { return s.revision }

// Fetch reads one file, refusing one longer than maxLength before reading
// it; the registry's bytes are checked against the layer digest.
func (s *ociSnapshot) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	d, ok := s.files[path]
	if !ok {
		return nil, tufclient.ErrNotFound
	}
	if maxLength > 0 && d.Size > maxLength {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", tufclient.ErrTooLarge, path, d.Size, maxLength)
	}
	s.read.mu.Lock()
	data, ok := s.read.data[path]
	s.read.mu.Unlock()
	if ok { // read from d, verified against its digest: d.Size bytes, bounded above
		return bytes.Clone(data), nil
	}
	data, err := s.fetch(ctx, path, d, maxLength)
	if err == nil && len(data) <= maxCachedFile {
		s.read.mu.Lock()
		s.read.data[path] = bytes.Clone(data)
		s.read.mu.Unlock()
	}
	return data, err
}

// fetch reads one file from the registry.
func (s *ociSnapshot) fetch(ctx context.Context, path string, d v1.Descriptor, maxLength int64) ([]byte, error) {
	l, err := remote.Layer(s.repo.Digest(d.Digest.String()), append(s.opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed() // stored as is; verified against the digest while read
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	defer rc.Close()
	return tufclient.ReadBounded(rc, maxLength)
}

// current keeps of a repository's files those a client reads today: every
// root (a client walks the chain from the one it pins), timestamp.json,
// the snapshot it names, the role versions that snapshot names and the
// bundles those roles list. Older versions stay in the repository (Git,
// a folder) for history and rollbacks; in the artifact, which every
// cluster's sync reads the manifest of, they would only grow it, by one
// layer a file a version.
//
// It returns the paths and the bytes of timestamp.json as read, to be
// pushed as read: it is the one file a publish rewrites in place, and the
// artifact must name the snapshot the files chosen here go with. (Every
// other file is written once under a versioned or hashed name: ward's
// repositories use consistent snapshots.)
func current(dir string, paths []string) ([]string, []byte, error) {
	var timestamp []byte
	read := func(p string, v any) error {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("failed to read the TUF repository: %w", err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("failed to read the TUF repository: %s: %w", p, err)
		}
		if p == "metadata/timestamp.json" {
			timestamp = data
		}
		return nil
	}
	type meta struct {
		Signed struct {
			Meta map[string]struct {
				Version int64 `json:"version"`
			} `json:"meta"`
			Targets map[string]struct {
				Hashes map[string]string `json:"hashes"`
			} `json:"targets"`
		} `json:"signed"`
	}
	var ts meta
	if err := read("metadata/timestamp.json", &ts); err != nil {
		return nil, nil, err
	}
	snap, ok := ts.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, nil, errors.New("failed to read the TUF repository: timestamp.json names no snapshot")
	}
	keep := map[string]bool{"metadata/timestamp.json": true}
	snapshotPath := fmt.Sprintf("metadata/%d.snapshot.json", snap.Version)
	keep[snapshotPath] = true
	var sn meta
	if err := read(snapshotPath, &sn); err != nil {
		return nil, nil, err
	}
	hashes := map[string]bool{}
	for role, m := range sn.Signed.Meta {
		if strings.ContainsAny(role, "/\\") || !strings.HasSuffix(role, ".json") {
			return nil, nil, fmt.Errorf("failed to read the TUF repository: the snapshot names a role file %q", role)
		}
		p := fmt.Sprintf("metadata/%d.%s", m.Version, role)
		keep[p] = true
		var r meta
		if err := read(p, &r); err != nil {
			return nil, nil, err
		}
		for _, t := range r.Signed.Targets {
			if h := t.Hashes["sha256"]; h != "" {
				hashes[h] = true
			}
		}
	}
	var out []string
	for _, p := range paths {
		base := path.Base(p)
		switch {
		case keep[p], strings.HasPrefix(p, "metadata/") && strings.HasSuffix(p, ".root.json"):
		case strings.HasPrefix(p, "targets/") && hashes[strings.SplitN(base, ".", 2)[0]]:
		default:
			continue
		}
		out = append(out, p)
	}
	return out, timestamp, nil
}

// PushOCI uploads the TUF repository in dir to url as an artifact, one
// layer per file titled by its path: every root and the metadata and
// bundles a client reads today (older versions stay in dir). It returns
// the artifact's digest.
func PushOCI(ctx context.Context, dir string, dst *OCI) (string, error) {
	ref, err := dst.ref()
	if err != nil {
		return "", err
	}
	opts, err := dst.remoteOptions(ctx)
	if err != nil {
		return "", err
	}
	var paths []string
	for _, top := range []string{"metadata", "targets"} {
		err := filepath.WalkDir(filepath.Join(dir, top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("failed to read the TUF repository %s: %w", dir, err)
		}
	}
	paths, timestamp, err := current(dir, paths)
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType("application/vnd.oci.empty.v1+json"))
	for _, p := range paths {
		data := timestamp
		if p != "metadata/timestamp.json" {
			if data, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
				return "", err
			}
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(data, FileMediaType), Annotations: map[string]string{titleKey: p}})
		if err != nil {
			return "", err
		}
	}
	img = mutate.Annotations(img, map[string]string{"dev.ward.tuf.repository": "v1"}).(v1.Image)
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", fmt.Errorf("failed to push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}
