package tufclient

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"ward.dev/ward/bundle/tuflayout"
)

// Limits bound what the client downloads. A zero field takes its default.
type Limits struct {
	Root      int64 // default 512 KiB
	Timestamp int64 // default 16 KiB
	Snapshot  int64 // default 2 MiB
	Targets   int64 // targets and environment roles; default 5 MiB
	Bundle    int64 // a bundle's signed length; default 32 MiB
}

// DefaultLimits are go-tuf's defaults for metadata and 32 MiB for a bundle.
var DefaultLimits = Limits{Root: 512 << 10, Timestamp: 16 << 10, Snapshot: 2 << 20, Targets: 5 << 20, Bundle: 32 << 20}

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Root, DefaultLimits.Root)
	def(&l.Timestamp, DefaultLimits.Timestamp)
	def(&l.Snapshot, DefaultLimits.Snapshot)
	def(&l.Targets, DefaultLimits.Targets)
	def(&l.Bundle, DefaultLimits.Bundle)
	return l
}

// Client verifies a repository through a pinned root. It is safe for
// concurrent use; updates run one at a time.
type Client struct {
	mu          sync.Mutex
	pinned      []byte
	pinnedVer   int64
	fetcher     Fetcher
	metadataDir string
	targetsDir  string
	versions    string
	now         func() time.Time
	limits      Limits
}

// Option configures a Client.
type Option func(*Client)

// WithClock sets the reference time for expiry checks (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithLimits sets download limits; zero fields keep defaults.
func WithLimits(l Limits) Option { return func(c *Client) { c.limits = l } }

// WithDirs stores trusted metadata in metadataDir and downloaded targets
// in targetsDir instead of the state directory's "metadata" and "targets"
// folders (the tuf-conformance client protocol names its own).
func WithDirs(metadataDir, targetsDir string) Option {
	return func(c *Client) { c.metadataDir, c.targetsDir = metadataDir, targetsDir }
}

// New returns a client that trusts pinnedRoot (a root.json, any version)
// and keeps its state in stateDir.
func New(pinnedRoot []byte, f Fetcher, stateDir string, opts ...Option) (*Client, error) {
	root, err := CheckRoot(pinnedRoot)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, errors.New("a fetcher is required")
	}
	c := &Client{
		pinned:      pinnedRoot,
		pinnedVer:   root.Signed.Version,
		fetcher:     f,
		metadataDir: filepath.Join(stateDir, "metadata"),
		targetsDir:  filepath.Join(stateDir, "targets"),
		versions:    filepath.Join(stateDir, "versions.json"),
		now:         time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	c.limits = c.limits.withDefaults()
	for _, d := range []string{c.metadataDir, c.targetsDir, filepath.Dir(c.versions)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create state directory: %w", err)
		}
	}
	return c, nil
}

// CheckRoot parses a root.json and checks that it is signed by its own
// threshold: what a root must be before anyone pins it.
func CheckRoot(data []byte) (*metadata.Metadata[metadata.RootType], error) {
	root, err := metadata.Root().FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load pinned root: %w", err)
	}
	if err := root.VerifyDelegate(tuflayout.Root, root); err != nil {
		return nil, fmt.Errorf("pinned root is not signed by its own threshold: %w", err)
	}
	return root, nil
}

// trustedRoot returns the root to start from: the persisted root.json when
// it is at least as new as the pinned one, else the pinned root.
func (c *Client) trustedRoot() []byte {
	data, err := os.ReadFile(filepath.Join(c.metadataDir, "root.json"))
	if err != nil {
		return c.pinned
	}
	root, err := metadata.Root().FromBytes(data)
	if err != nil || root.Signed.Version < c.pinnedVer {
		return c.pinned
	}
	return data
}

// scheme prefixes the pseudo URLs handed to go-tuf's updater; the adapter
// strips it again.
const scheme = "ward-repo:/"

// refreshed returns an updater that has refreshed the top-level metadata.
// The caller holds c.mu.
func (c *Client) refreshed(ctx context.Context) (*updater.Updater, error) {
	u, err := c.updater(ctx)
	if err != nil {
		return nil, err
	}
	return u, u.Refresh()
}

func (c *Client) updater(ctx context.Context) (*updater.Updater, error) {
	cfg, err := config.New(scheme+tuflayout.MetadataDir, c.trustedRoot())
	if err != nil {
		return nil, err
	}
	cfg.RemoteTargetsURL = scheme + tuflayout.TargetsDir
	cfg.LocalMetadataDir = c.metadataDir
	cfg.LocalTargetsDir = c.targetsDir
	cfg.Fetcher = adapter{ctx: ctx, f: c.fetcher}
	cfg.RootMaxLength = c.limits.Root
	cfg.TimestampMaxLength = c.limits.Timestamp
	cfg.SnapshotMaxLength = c.limits.Snapshot
	cfg.TargetsMaxLength = c.limits.Targets
	u, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	u.UnsafeSetRefTime(c.now().UTC())
	return u, nil
}

// Refresh updates the top-level metadata (root, timestamp, snapshot,
// targets) and persists it.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.refreshed(ctx)
	return classify("", err)
}

// Download refreshes, then downloads and verifies each target path in
// order into dir, skipping one whose verified copy is already there. It is
// the generic TUF flow of the tuf-conformance client protocol.
func (c *Client) Download(ctx context.Context, dir string, paths ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, err := c.refreshed(ctx)
	if err != nil {
		return classify("", err)
	}
	for _, p := range paths {
		// Each lookup verifies every delegated role on its own path
		// against the delegator on that path: a role reached before through
		// another delegator must not lend that authority here (go-tuf's
		// updater reuses it by name).
		forgetDelegated(u)
		ti, err := u.GetTargetInfo(p)
		if err != nil {
			return classify("", err)
		}
		local := filepath.Join(dir, url.PathEscape(p))
		if found, _, _ := u.FindCachedTarget(ti, local); found != "" {
			continue
		}
		if _, _, err := u.DownloadTarget(ti, local, ""); err != nil {
			return classify("", err)
		}
	}
	return nil
}

// forgetDelegated drops the delegated roles from u's trusted set, keeping
// the top-level ones, so that the next target lookup loads each delegated
// role again (from the local copy or the repository) and verifies it
// against the delegator on its own path. The trusted set's Targets map is
// shared with the updater; TestDownloadVerifiesRoleAgainstCurrentDelegator
// pins that.
func forgetDelegated(u *updater.Updater) {
	trusted := u.GetTrustedMetadataSet().Targets
	for name := range trusted {
		if name != tuflayout.Targets {
			delete(trusted, name)
		}
	}
}

// Update verifies env's current bundle and returns it. It refuses a
// bundle version below the one last accepted for env (and the same version
// with other bytes), then records the accepted version in the state
// directory.
func (c *Client) Update(ctx context.Context, env string) (*Target, error) {
	if err := tuflayout.ValidateEnv(env); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u, err := c.refreshed(ctx)
	if err != nil {
		return nil, classify(env, err)
	}
	path := tuflayout.TargetPath(env)
	if err := checkLayout(u, env, path); err != nil {
		if ve := (*VerifyError)(nil); errors.As(err, &ve) {
			return nil, ve
		}
		return nil, &VerifyError{Kind: ErrInvalid, Env: env, Err: err}
	}
	ti, err := u.GetTargetInfo(path)
	if err != nil {
		// go-tuf says so only in words: "target <path> not found".
		if err.Error() == fmt.Sprintf("target %s not found", path) {
			return nil, &VerifyError{Kind: ErrNotFound, Env: env, Err: fmt.Errorf("environment %s has no bundle", env)}
		}
		return nil, classify(env, err)
	}
	custom, err := tuflayout.ParseCustom(ti.Custom)
	if err != nil {
		return nil, &VerifyError{Kind: ErrInvalid, Env: env, Err: err}
	}
	sum, ok := ti.Hashes["sha256"]
	if !ok {
		return nil, &VerifyError{Kind: ErrInvalid, Env: env, Err: errors.New("bundle target has no sha256 hash")}
	}
	digest := "sha256:" + hex.EncodeToString(sum)
	if ti.Length > c.limits.Bundle {
		return nil, &VerifyError{Kind: ErrTooLarge, Env: env, Err: fmt.Errorf("bundle is %d bytes, over the limit of %d", ti.Length, c.limits.Bundle)}
	}
	seen, err := c.readVersions()
	if err != nil {
		return nil, err
	}
	if last, ok := seen[env]; ok {
		if custom.Version < last.Version {
			return nil, &VerifyError{Kind: ErrRollback, Env: env, Err: fmt.Errorf("bundle version %d is lower than version %d accepted before", custom.Version, last.Version)}
		}
		if custom.Version == last.Version && digest != last.Digest {
			return nil, &VerifyError{Kind: ErrRollback, Env: env, Err: fmt.Errorf("bundle version %d was accepted before with digest %s, now it names %s", custom.Version, last.Digest, digest)}
		}
	}
	_, data, err := u.FindCachedTarget(ti, "")
	if err != nil || data == nil {
		if _, data, err = u.DownloadTarget(ti, "", ""); err != nil {
			return nil, classify(env, err)
		}
	}
	roleVersion, expires := int64(0), time.Time{}
	trusted := u.GetTrustedMetadataSet()
	if md := trusted.Targets[env]; md != nil {
		roleVersion, expires = md.Signed.Version, md.Signed.Expires
	}
	trustUntil := expires
	earlier := func(t time.Time) {
		if !t.IsZero() && (trustUntil.IsZero() || t.Before(trustUntil)) {
			trustUntil = t
		}
	}
	if trusted.Timestamp != nil {
		earlier(trusted.Timestamp.Signed.Expires)
	}
	if trusted.Snapshot != nil {
		earlier(trusted.Snapshot.Signed.Expires)
	}
	if md := trusted.Targets[tuflayout.Targets]; md != nil {
		earlier(md.Signed.Expires)
	}
	seen[env] = accepted{Version: custom.Version, Digest: digest}
	if err := c.writeVersions(seen); err != nil {
		return nil, err
	}
	return &Target{env: env, data: data, digest: digest, custom: *custom, roleVersion: roleVersion, expires: expires, trustUntil: trustUntil}, nil
}

// checkLayout enforces ward's layout beyond TUF's rules: the top-level
// targets role only delegates, and the first delegation that covers env's
// bundle is env's own terminating role.
func checkLayout(u *updater.Updater, env, path string) error {
	targets := u.GetTrustedMetadataSet().Targets[tuflayout.Targets]
	if targets == nil {
		return errors.New("no trusted targets role")
	}
	if len(targets.Signed.Targets) > 0 {
		return errors.New("the targets role lists targets itself; in ward it may only delegate to environment roles")
	}
	if targets.Signed.Delegations == nil {
		return errors.New("the targets role delegates to no environment")
	}
	var envs []string
	for _, role := range targets.Signed.Delegations.Roles {
		envs = append(envs, role.Name)
		ok, err := role.IsDelegatedPath(path)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if role.Name != env || !role.Terminating {
			return fmt.Errorf("%s is delegated to role %q (terminating %v), want the terminating role %q", path, role.Name, role.Terminating, env)
		}
		return nil
	}
	return &VerifyError{Kind: ErrUnknownEnv, Env: env, Err: fmt.Errorf("the repository has %s", strings.Join(envs, ", "))}
}

type accepted struct {
	Version int64  `json:"version"`
	Digest  string `json:"digest"`
}

func (c *Client) readVersions() (map[string]accepted, error) {
	data, err := os.ReadFile(c.versions)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]accepted{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read accepted versions: %w", err)
	}
	out := map[string]accepted{}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("failed to read accepted versions %s: %w", c.versions, err)
	}
	return out, nil
}

func (c *Client) writeVersions(v map[string]accepted) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := c.versions + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("failed to record accepted versions: %w", err)
	}
	if err := os.Rename(tmp, c.versions); err != nil {
		return fmt.Errorf("failed to record accepted versions: %w", err)
	}
	return nil
}

// adapter serves go-tuf's fetcher interface from a Fetcher.
type adapter struct {
	ctx context.Context
	f   Fetcher
}

func (a adapter) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	p, ok := strings.CutPrefix(urlPath, scheme)
	if !ok {
		return nil, &metadata.ErrDownload{Msg: "unexpected URL " + urlPath}
	}
	data, err := a.f.Fetch(a.ctx, p, maxLength)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, ErrNotFound):
		return nil, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: p}
	case errors.Is(err, ErrTooLarge):
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: err.Error()}
	default:
		return nil, fmt.Errorf("%w: %w", errFetch, err)
	}
}
