// Package tuflayout fixes the names ward's TUF repositories use, on every
// transport: metadata/{N.root.json, timestamp.json, N.snapshot.json,
// N.targets.json, N.<env>.json} and targets/<env>/<sha256>.bundle.tar.gz,
// one delegated role per environment with the path pattern "<env>/*", and
// the custom fields a bundle target carries.
package tuflayout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Folders of a repository.
const (
	MetadataDir = "metadata"
	TargetsDir  = "targets"
)

// Top-level role names.
const (
	Root      = "root"
	Targets   = "targets"
	Snapshot  = "snapshot"
	Timestamp = "timestamp"
)

// BundleFile is the target file name of an environment's bundle.
const BundleFile = "bundle.tar.gz"

// TopLevelRoles returns the top-level role names in signing order.
func TopLevelRoles() []string { return []string{Root, Targets, Snapshot, Timestamp} }

// IsTopLevel reports whether role is root, targets, snapshot or timestamp.
func IsTopLevel(role string) bool {
	switch role {
	case Root, Targets, Snapshot, Timestamp:
		return true
	}
	return false
}

var envName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// ValidateEnv checks an environment name: lower-case letters, digits and
// dashes, at most 32 characters, and not a top-level role's name.
func ValidateEnv(env string) error {
	if !envName.MatchString(env) {
		return fmt.Errorf("invalid environment name %q: use lower-case letters, digits and dashes (at most 32)", env)
	}
	if IsTopLevel(env) {
		return fmt.Errorf("invalid environment name %q: it is a TUF top-level role", env)
	}
	return nil
}

// TargetPath is the TUF target path of env's bundle, "<env>/bundle.tar.gz".
func TargetPath(env string) string { return env + "/" + BundleFile }

// PathPattern is the delegation path pattern of env's role, "<env>/*".
func PathPattern(env string) string { return env + "/*" }

// TargetFile is where env's bundle with the given hex sha256 is stored
// (consistent snapshots): "targets/<env>/<sha256>.bundle.tar.gz".
func TargetFile(env, sha256hex string) string {
	return TargetsDir + "/" + env + "/" + sha256hex + "." + BundleFile
}

// VersionedMetadata is "metadata/<version>.<role>.json".
func VersionedMetadata(role string, version int64) string {
	return MetadataDir + "/" + strconv.FormatInt(version, 10) + "." + role + ".json"
}

// TimestampMetadata is "metadata/timestamp.json".
const TimestampMetadata = MetadataDir + "/" + Timestamp + ".json"

// ParseVersioned splits "<version>.<role>.json" (a base name) into its parts.
func ParseVersioned(name string) (role string, version int64, ok bool) {
	rest, found := strings.CutSuffix(name, ".json")
	if !found {
		return "", 0, false
	}
	v, role, found := strings.Cut(rest, ".")
	if !found || role == "" {
		return "", 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
		return "", 0, false
	}
	return role, n, true
}

// Custom is what a bundle target carries beside its length and hashes.
type Custom struct {
	// Version is the bundle version in this environment; it only grows.
	Version int64 `json:"version"`
	// Commit is the policy repository commit the bundle was built from.
	Commit string `json:"commit,omitempty"`
	// Repository is the policy repository's remote URL.
	Repository string `json:"repository,omitempty"`
	// PromotedFrom names the environment and version this bundle was
	// promoted from; nil for a bundle published directly.
	PromotedFrom *Origin `json:"promotedFrom,omitempty"`
	// RestoredFrom is the earlier version of this environment whose bundle
	// a rollback re-signed; 0 otherwise.
	RestoredFrom int64 `json:"restoredFrom,omitempty"`
}

// Origin names a bundle version in an environment.
type Origin struct {
	Env     string `json:"env"`
	Version int64  `json:"version"`
}

// String renders "<env>@v<version>".
func (o *Origin) String() string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf("%s@v%d", o.Env, o.Version)
}

// MaxCustomBytes bounds the custom field; anything larger is refused.
const MaxCustomBytes = 4096

// ParseCustom decodes a target's custom field strictly. A missing field or
// a version below 1 is an error: every ward bundle target has a version.
func ParseCustom(raw *json.RawMessage) (*Custom, error) {
	if raw == nil {
		return nil, fmt.Errorf("target has no custom fields")
	}
	if len(*raw) > MaxCustomBytes {
		return nil, fmt.Errorf("custom fields are %d bytes, over the limit of %d", len(*raw), MaxCustomBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(*raw))
	var c Custom
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("invalid custom fields: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid custom fields: trailing data")
	}
	if c.Version < 1 {
		return nil, fmt.Errorf("invalid custom fields: version %d, want 1 or more", c.Version)
	}
	return &c, nil
}

// Raw encodes c for a target's custom field.
func (c *Custom) Raw() (*json.RawMessage, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	raw := json.RawMessage(b)
	return &raw, nil
}
