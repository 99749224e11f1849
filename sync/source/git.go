package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/internal/httpbound"
)

// MaxGitFetchBytes bounds one Git fetch over HTTP(S): each response body.
const MaxGitFetchBytes = 512 << 20

var installGitHTTP sync.Once

// boundGitHTTP installs go-git's HTTP(S) transport with bounded response
// bodies and time limits on connection set-up. go-git keeps transports in
// a process-wide table.
func boundGitHTTP() {
	installGitHTTP.Do(func() {
		gitBase = http.DefaultTransport.(*http.Transport).Clone()
		gitBase.TLSHandshakeTimeout = 10 * time.Second
		gitBase.ResponseHeaderTimeout = 30 * time.Second
		c := githttp.NewClient(&http.Client{Transport: &httpbound.Transport{Next: caRouter{}, Max: MaxGitFetchBytes}})
		client.InstallProtocol("https", c)
		client.InstallProtocol("http", c)
	})
}

var (
	gitBase *http.Transport
	// gitCAs holds a transport per private CA bundle (go-git's own
	// CABundle option needs a bare *http.Transport, and ward's is wrapped
	// to bound responses). A fetch names its bundle in its context, so a
	// CA given for one source is never trusted for another.
	gitCAs sync.Map // string(bundle) → *http.Transport
)

type caKey struct{}

// caRouter sends a request through the transport of the CA bundle its
// context names, else through the base transport.
type caRouter struct{}

func (caRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if t, ok := req.Context().Value(caKey{}).(*http.Transport); ok {
		return t.RoundTrip(req)
	}
	return gitBase.RoundTrip(req)
}

// withCA returns ctx naming a transport that trusts the PEM certificates
// in bundle, besides the system's.
func withCA(ctx context.Context, bundle []byte) (context.Context, error) {
	if t, ok := gitCAs.Load(string(bundle)); ok {
		return context.WithValue(ctx, caKey{}, t), nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("ca.crt holds no PEM certificates")
	}
	t := gitBase.Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	actual, _ := gitCAs.LoadOrStore(string(bundle), t)
	return context.WithValue(ctx, caKey{}, actual), nil
}

// Git is a TUF repository kept in a Git repository: a branch (default
// main), a tag or a pinned commit, and the folder holding metadata/ and
// targets/.
type Git struct {
	URL    string
	Branch string
	Tag    string
	Commit string
	// Path of the TUF repository inside the Git repository ("" for the
	// top).
	Path string
	// Auth for the remote (http basic auth or bearer token, ssh keys); nil
	// for none.
	Auth transport.AuthMethod
	// CABundle holds PEM certificates trusted for an https remote, besides
	// the system's.
	CABundle []byte
	// CacheDir holds a bare clone kept between syncs.
	CacheDir string
}

func (g *Git) String() string {
	ref := g.Branch
	switch {
	case g.Commit != "":
		ref = g.Commit
	case g.Tag != "":
		ref = "tag " + g.Tag
	case ref == "":
		ref = "main"
	}
	s := "git " + redactURL(g.URL) + " " + ref
	if g.Path != "" {
		s += " " + g.Path
	}
	return s
}

// redactURL drops a user part (often a token) from a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Open fetches the ref into the cached bare clone and returns the tree at
// the resolved commit.
func (g *Git) Open(ctx context.Context) (Snapshot, error) {
	boundGitHTTP()
	if g.URL == "" {
		return nil, errors.New("no Git URL")
	}
	if err := os.MkdirAll(g.CacheDir, 0o700); err != nil {
		return nil, err
	}
	repo, err := git.PlainOpen(g.CacheDir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(g.CacheDir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open the Git cache: %w", err)
	}
	if err := setRemote(repo, g.URL); err != nil {
		return nil, err
	}
	var spec gitconfig.RefSpec
	var local plumbing.ReferenceName
	name := g.Branch
	switch {
	case g.Tag != "":
		local = plumbing.NewTagReferenceName(g.Tag)
		spec = gitconfig.RefSpec(fmt.Sprintf("+refs/tags/%s:%s", g.Tag, local))
		name = g.Tag
	default:
		if name == "" {
			name = "main"
		}
		local = plumbing.NewRemoteReferenceName("origin", name)
		spec = gitconfig.RefSpec(fmt.Sprintf("+refs/heads/%s:%s", name, local))
	}
	if len(g.CABundle) > 0 {
		var err error
		if ctx, err = withCA(ctx, g.CABundle); err != nil {
			return nil, err
		}
	}
	opts := &git.FetchOptions{RemoteName: "origin", RefSpecs: []gitconfig.RefSpec{spec}, Auth: g.Auth, Tags: git.NoTags, Force: true}
	if g.Commit == "" && shallowOK(g.URL) {
		opts.Depth = 1
	}
	if err := repo.FetchContext(ctx, opts); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		// The caller names the source; say only what went wrong.
		return nil, errors.New(redactErr(err, g.URL))
	}
	var hash plumbing.Hash
	if g.Commit != "" {
		hash = plumbing.NewHash(g.Commit)
		if hash.String() != strings.ToLower(g.Commit) {
			return nil, fmt.Errorf("commit %q is not a full SHA-1", g.Commit)
		}
	} else {
		ref, err := repo.Reference(local, true)
		if err != nil {
			return nil, fmt.Errorf("%s not found in %s: %w", name, redactURL(g.URL), err)
		}
		hash = ref.Hash()
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("commit %s of %s: %w", hash, redactURL(g.URL), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(g.Path, "/"); p != "" {
		if tree, err = tree.Tree(p); err != nil {
			return nil, fmt.Errorf("folder %s not found at %s: %w", p, hash, err)
		}
	}
	return &gitSnapshot{tree: tree, revision: fmt.Sprintf("%s@sha1:%s", name, hash)}, nil
}

// shallowOK: go-git's in-process file transport refuses shallow fetches.
func shallowOK(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "ssh://") || strings.Contains(u, "@")
}

func setRemote(repo *git.Repository, u string) error {
	r, err := repo.Remote("origin")
	if err == nil && len(r.Config().URLs) == 1 && r.Config().URLs[0] == u {
		return nil
	}
	if err == nil {
		if err := repo.DeleteRemote("origin"); err != nil {
			return err
		}
	}
	_, err = repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{u}})
	return err
}

// redactErr removes the user part of u (a token is often the user name)
// from an error message.
func redactErr(err error, u string) string {
	msg := err.Error()
	if parsed, perr := url.Parse(u); perr == nil && parsed.User != nil {
		msg = strings.ReplaceAll(msg, parsed.User.String()+"@", "")
		if p, ok := parsed.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "REDACTED")
		}
		if name := parsed.User.Username(); name != "" {
			msg = strings.ReplaceAll(msg, name, "REDACTED")
		}
	}
	return msg
}

type gitSnapshot struct {
	tree     *object.Tree
	revision string
}

func (s *gitSnapshot) Revision() string { return s.revision }

// Fetch reads a file of the tree, refusing one longer than maxLength
// before reading it.
func (s *gitSnapshot) Fetch(_ context.Context, p string, maxLength int64) ([]byte, error) {
	p = path.Clean(p)
	if strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") {
		return nil, tufclient.ErrNotFound
	}
	f, err := s.tree.File(p)
	if err != nil {
		if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, tufclient.ErrNotFound
		}
		return nil, err
	}
	if maxLength > 0 && f.Size > maxLength {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", tufclient.ErrTooLarge, p, f.Size, maxLength)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return tufclient.ReadBounded(r, maxLength)
}
