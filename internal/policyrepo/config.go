// Package policyrepo reads and writes ward.yaml, the file at the root of a
// policy repository that says where its policies and its TUF repository
// are and which keys sign each role, and loads those keys.
package policyrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
)

// FileName is the configuration file at a policy repository's root.
const FileName = "ward.yaml"

// APIVersion and Kind of ward.yaml.
const (
	APIVersion = "ward.dev/v1"
	Kind       = "PolicyRepository"
)

// Config is ward.yaml.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Policies is the folder of policy documents, relative to ward.yaml.
	Policies string `json:"policies"`
	// Tests is the folder of policy test cases (PolicyTest documents) run
	// by `ward test`, relative to ward.yaml; default "tests".
	Tests string `json:"tests,omitempty"`
	// TUF is the TUF repository: a folder relative to ward.yaml.
	TUF string `json:"tuf"`
	// Environments lists the environments in promotion order.
	Environments []string `json:"environments"`
	// Keys maps a role (root, targets, snapshot, timestamp or an
	// environment) to its signing keys: files relative to ward.yaml or KMS
	// URIs.
	Keys map[string][]string `json:"keys,omitempty"`
	// Expiry overrides how long newly signed metadata stays valid, per
	// role, as Go durations ("24h").
	Expiry map[string]string `json:"expiry,omitempty"`
	// Remotes are where every signing command pushes the TUF repository
	// after it signs: Git branches and OCI artifacts that controllers
	// follow.
	Remotes []Remote `json:"remotes,omitempty"`
}

// Remote is one place the TUF repository is pushed to: exactly one of Git
// and OCI.
type Remote struct {
	Git *GitRemote `json:"git,omitempty"`
	OCI *OCIRemote `json:"oci,omitempty"`
}

// GitRemote is a branch (and folder) of a Git repository.
type GitRemote struct {
	URL    string `json:"url"`
	Branch string `json:"branch,omitempty"`
	Path   string `json:"path,omitempty"`
}

// OCIRemote is an OCI artifact reference, oci://registry/repository:tag.
type OCIRemote struct {
	URL      string `json:"url"`
	Insecure bool   `json:"insecure,omitempty"`
}

// Repo is a loaded policy repository.
type Repo struct {
	// Dir is the folder holding ward.yaml.
	Dir    string
	Config Config
}

// ErrNoConfig is returned by Load when DIR holds no ward.yaml.
var ErrNoConfig = errors.New("no " + FileName)

// Load reads DIR/ward.yaml strictly.
func Load(dir string) (*Repo, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (run `ward init %s` to make a policy repository)", ErrNoConfig, dir, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if c.APIVersion != APIVersion || c.Kind != Kind {
		return nil, fmt.Errorf("failed to read %s: apiVersion/kind is %q/%q, want %q/%q", path, c.APIVersion, c.Kind, APIVersion, Kind)
	}
	if c.Policies == "" {
		c.Policies = "policies"
	}
	if c.TUF == "" {
		c.TUF = "tuf"
	}
	for _, env := range c.Environments {
		if err := tuflayout.ValidateEnv(env); err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", path, err)
		}
	}
	if _, err := c.expiry(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return &Repo{Dir: dir, Config: c}, nil
}

// Save writes ward.yaml.
func (r *Repo) Save() error {
	data, err := yaml.Marshal(r.Config)
	if err != nil {
		return err
	}
	header := "# ward policy repository: see `ward --help`.\n# Keys are files relative to this file or KMS URIs; keys/ is git-ignored.\n"
	return os.WriteFile(filepath.Join(r.Dir, FileName), append([]byte(header), data...), 0o644)
}

// PoliciesDir is the absolute policy folder.
func (r *Repo) PoliciesDir() string { return r.abs(r.Config.Policies) }

// TUFDir is the absolute TUF repository folder.
func (r *Repo) TUFDir() string { return r.abs(r.Config.TUF) }

// TestsDir is the absolute path of the policy test folder.
func (r *Repo) TestsDir() string {
	if r.Config.Tests == "" {
		return r.abs("tests")
	}
	return r.abs(r.Config.Tests)
}

func (r *Repo) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, p)
}

func (c Config) expiry() (tufrepo.Expiry, error) {
	var e tufrepo.Expiry
	fields := map[string]*time.Duration{
		tuflayout.Root: &e.Root, tuflayout.Targets: &e.Targets, tuflayout.Snapshot: &e.Snapshot,
		tuflayout.Timestamp: &e.Timestamp, "environments": &e.Env,
	}
	for role, v := range c.Expiry {
		f, ok := fields[role]
		if !ok {
			return e, fmt.Errorf("expiry: unknown role %q (use root, targets, snapshot, timestamp or environments)", role)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return e, fmt.Errorf("expiry.%s: %q is not a positive duration such as 24h", role, v)
		}
		*f = d
	}
	return e, nil
}

// TUF opens the TUF repository with the configured expiry.
func (r *Repo) TUF(opts ...tufrepo.Option) *tufrepo.Repo {
	e, _ := r.Config.expiry() // checked by Load
	return tufrepo.Open(r.TUFDir(), append([]tufrepo.Option{tufrepo.WithExpiry(e)}, opts...)...)
}

// KeyRefs returns the key references of role, with overrides (role → refs)
// taking precedence over ward.yaml. File paths are made absolute.
func (r *Repo) KeyRefs(role string, overrides map[string][]string) []string {
	refs := r.Config.Keys[role]
	if o, ok := overrides[role]; ok {
		return o // given on the command line: relative to the working directory
	}
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if keys.IsKMS(ref) {
			out = append(out, ref)
		} else {
			out = append(out, r.abs(ref))
		}
	}
	return out
}

// Signers loads the keys of each role named. A role with no keys
// configured, or a key that fails to load, is an error naming the role.
func (r *Repo) Signers(ctx context.Context, overrides map[string][]string, roles ...string) (tufrepo.Signers, error) {
	out := tufrepo.Signers{}
	for _, role := range roles {
		if _, done := out[role]; done {
			continue
		}
		refs := r.KeyRefs(role, overrides)
		if len(refs) == 0 {
			return nil, fmt.Errorf("no keys for role %s: list them under keys.%s in %s or pass --key %s=PATH", role, role, FileName, role)
		}
		for _, ref := range refs {
			s, err := keys.Load(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("role %s: %w", role, err)
			}
			out[role] = append(out[role], s)
		}
	}
	return out, nil
}

// ParseKeyOverrides parses --key ROLE=REF[,REF] flags.
func ParseKeyOverrides(flags []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, f := range flags {
		role, refs, ok := strings.Cut(f, "=")
		if !ok || role == "" || refs == "" {
			return nil, fmt.Errorf("--key %q: want ROLE=PATH or ROLE=KMS-URI", f)
		}
		for ref := range strings.SplitSeq(refs, ",") {
			if ref != "" && !slices.Contains(out[role], ref) {
				out[role] = append(out[role], ref)
			}
		}
	}
	return out, nil
}
