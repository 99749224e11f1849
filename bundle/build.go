package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrUncommitted is returned by Build when the policy folder differs from
// the commit checked out, so the bundle would not be what the commit says.
var ErrUncommitted = errors.New("policy folder has uncommitted changes")

// Built is the result of Build: the bundle bytes, their digest and manifest.
type Built struct {
	// Bytes is the gzip'd tar.
	Bytes []byte
	// Digest is "sha256:<hex>" of Bytes.
	Digest string
	// Manifest is the manifest stored in Bytes.
	Manifest Manifest
}

type buildOptions struct {
	allowUncommitted bool
	limits           Limits
}

// BuildOption configures Build.
type BuildOption func(*buildOptions)

// WithAllowUncommitted builds from the working tree even when it differs
// from the commit checked out; the manifest still names that commit.
func WithAllowUncommitted() BuildOption {
	return func(o *buildOptions) { o.allowUncommitted = true }
}

// WithBuildLimits sets the limits a built bundle must stay within; a bundle
// that the reader would refuse is never built. Zero fields keep defaults.
func WithBuildLimits(l Limits) BuildOption {
	return func(o *buildOptions) { o.limits = l }
}

// IsPolicyFile reports whether a file name is a policy document that goes
// into a bundle: YAML or JSON, not hidden.
func IsPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Build makes the bundle of the policy documents below dir. Inside a Git
// checkout the manifest records the remote URL, the commit and its time;
// elsewhere the commit is empty and the time is the Unix epoch, so the same
// files give the same bytes wherever they are.
func Build(dir string, opts ...BuildOption) (*Built, error) {
	o := buildOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve %s: %w", dir, err)
	}
	files, err := readPolicyFolder(abs)
	if err != nil {
		return nil, err
	}
	src, created, err := gitSource(abs, files, o.allowUncommitted)
	if err != nil {
		return nil, err
	}
	m := Manifest{APIVersion: APIVersion, Kind: Kind, Source: src, Created: created.UTC().Format(time.RFC3339)}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	m.Policies = make([]PolicyFile, 0, len(names))
	for _, name := range names {
		sum := sha256.Sum256(files[name])
		m.Policies = append(m.Policies, PolicyFile{Path: PoliciesDir + "/" + name, SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := write(&m, files, names, created)
	if err != nil {
		return nil, fmt.Errorf("failed to write bundle of %s: %w", dir, err)
	}
	// Never build what the reader would refuse.
	if _, err := Read(bytes.NewReader(data), WithLimits(o.limits)); err != nil {
		return nil, fmt.Errorf("bundle of %s would be refused by readers: %w", dir, err)
	}
	sum := sha256.Sum256(data)
	return &Built{Bytes: data, Digest: "sha256:" + hex.EncodeToString(sum[:]), Manifest: m}, nil
}

// ReadPolicyDir returns the policy documents below dir as a bundle would
// hold them (paths "policies/<relative path>", sorted), without building
// one: for checking a working tree before it is committed.
func ReadPolicyDir(dir string) ([]Document, error) {
	files, err := readPolicyFolder(dir)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(files))
	out := make([]Document, 0, len(names))
	for _, n := range names {
		out = append(out, Document{Path: PoliciesDir + "/" + n, Data: files[n]})
	}
	return out, nil
}

// readPolicyFolder returns the policy documents below dir keyed by their
// slash-separated path relative to dir. Links and other non-regular files
// are errors: what is bundled must be exactly what was reviewed.
func readPolicyFolder(dir string) (map[string][]byte, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read policy folder: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("policy folder %s is not a directory", dir)
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !IsPolicyFile(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("policy file %s is not a regular file (links are not bundled)", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read policy folder %s: %w", dir, err)
	}
	return files, nil
}

// write renders the tar.gz deterministically.
func write(m *Manifest, files map[string][]byte, names []string, created time.Time) ([]byte, error) {
	manifest, err := m.encode()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte) error {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     int64(len(data)),
			Mode:     0o644,
			ModTime:  created.UTC(),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ManifestName, manifest); err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := add(PoliciesDir+"/"+name, files[name]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gitSource finds the Git checkout holding dir and returns the source and
// commit time. Outside a checkout (or in one with no commit yet) it
// returns an empty source with the policy path and the Unix epoch.
func gitSource(dir string, files map[string][]byte, allowUncommitted bool) (Source, time.Time, error) {
	epoch := time.Unix(0, 0).UTC()
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return Source{Path: "."}, epoch, nil
	}
	if err != nil {
		return Source{}, epoch, fmt.Errorf("failed to open the Git checkout of %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return Source{}, epoch, fmt.Errorf("failed to open the Git work tree of %s: %w", dir, err)
	}
	top, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return Source{}, epoch, err
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Source{}, epoch, err
	}
	rel, err := filepath.Rel(top, real)
	if err != nil {
		return Source{}, epoch, err
	}
	rel = filepath.ToSlash(rel)
	head, err := repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return Source{Path: rel}, epoch, nil
	}
	if err != nil {
		return Source{}, epoch, fmt.Errorf("failed to read HEAD of %s: %w", top, err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return Source{}, epoch, fmt.Errorf("failed to read commit %s: %w", head.Hash(), err)
	}
	if !allowUncommitted {
		if err := checkCommitted(commit, rel, files); err != nil {
			return Source{}, epoch, err
		}
	}
	src := Source{Repository: remoteURL(repo), Commit: head.Hash().String(), Path: rel}
	return src, commit.Committer.When.UTC(), nil
}

// checkCommitted compares the policy files with the commit's tree.
func checkCommitted(commit *object.Commit, rel string, files map[string][]byte) error {
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("failed to read tree of %s: %w", commit.Hash, err)
	}
	if rel != "." {
		tree, err = tree.Tree(rel)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return fmt.Errorf("%w: %s is not in commit %s", ErrUncommitted, rel, commit.Hash.String()[:12])
		}
		if err != nil {
			return fmt.Errorf("failed to read %s in %s: %w", rel, commit.Hash, err)
		}
	}
	committed := map[string]plumbing.Hash{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if IsPolicyFile(path.Base(f.Name)) && !hiddenPath(f.Name) {
			committed[f.Name] = f.Hash
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to list %s in %s: %w", rel, commit.Hash, err)
	}
	for name, data := range files {
		h, ok := committed[name]
		if !ok || h != plumbing.ComputeHash(plumbing.BlobObject, data) {
			return fmt.Errorf("%w: %s differs from commit %s (commit it, or pass --allow-uncommitted)", ErrUncommitted, path.Join(rel, name), commit.Hash.String()[:12])
		}
	}
	for name := range committed {
		if _, ok := files[name]; !ok {
			return fmt.Errorf("%w: %s is deleted but still in commit %s", ErrUncommitted, path.Join(rel, name), commit.Hash.String()[:12])
		}
	}
	return nil
}

func hiddenPath(p string) bool {
	for part := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// remoteURL returns origin's URL (or the first remote's) without
// credentials; a local path is not a repository URL and gives "".
func remoteURL(repo *git.Repository) string {
	remotes, err := repo.Remotes()
	if err != nil || len(remotes) == 0 {
		return ""
	}
	slices.SortFunc(remotes, func(a, b *git.Remote) int {
		switch {
		case a.Config().Name == "origin":
			return -1
		case b.Config().Name == "origin":
			return 1
		}
		return strings.Compare(a.Config().Name, b.Config().Name)
	})
	urls := remotes[0].Config().URLs
	if len(urls) == 0 {
		return ""
	}
	return SanitizeRepositoryURL(urls[0])
}

// SanitizeRepositoryURL strips credentials from a repository URL and
// returns "" for a local path, which must never enter a bundle. An ssh
// user name stays ("git@host"); anything in an http(s) user part may be a
// token and goes.
func SanitizeRepositoryURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "file" {
		return ""
	}
	if err == nil && u.Scheme != "" && u.Host != "" {
		switch {
		case strings.HasPrefix(u.Scheme, "ssh") && u.User != nil:
			u.User = url.User(u.User.Username())
		default:
			u.User = nil
		}
		return u.String()
	}
	// scp-like syntax, user@host:path or host:path, as Git reads it: a colon
	// before any slash.
	host, _, ok := strings.Cut(raw, ":")
	if ok && len(host) > 1 && !strings.ContainsAny(host, "/\\") {
		return raw
	}
	return ""
}
