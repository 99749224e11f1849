package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// APIVersion and Kind identify a bundle manifest.
const (
	APIVersion = "ward.dev/v1"
	Kind       = "Bundle"
)

// ManifestName is the tar entry that holds the manifest.
const ManifestName = "manifest.json"

// PoliciesDir is the tar folder that holds the policy documents.
const PoliciesDir = "policies"

// Manifest describes a bundle: where its policies came from and the sha256
// of each policy file it carries.
type Manifest struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Source     Source       `json:"source"`
	Created    string       `json:"created"`
	Policies   []PolicyFile `json:"policies"`
}

// Source names the commit a bundle was built from. Outside a Git checkout
// Repository and Commit are empty.
type Source struct {
	// Repository is the remote URL of the policy repository, never a local path.
	Repository string `json:"repository"`
	// Commit is the full commit hash the policies were read at.
	Commit string `json:"commit"`
	// Path is the policy folder relative to the repository root.
	Path string `json:"path"`
}

// PolicyFile is one policy document in the bundle.
type PolicyFile struct {
	// Path is the tar entry name, "policies/<path below the policy folder>".
	Path string `json:"path"`
	// SHA256 is the lower-case hex sha256 of the file's bytes.
	SHA256 string `json:"sha256"`
}

// CreatedTime parses Created.
func (m *Manifest) CreatedTime() (time.Time, error) {
	return time.Parse(time.RFC3339, m.Created)
}

// encode renders the manifest as the bytes stored in a bundle.
func (m *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// parseManifest decodes manifest bytes strictly: unknown fields, trailing
// data, a wrong apiVersion or kind, or a bad time are errors.
func parseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the manifest object")
	}
	if m.APIVersion != APIVersion || m.Kind != Kind {
		return nil, fmt.Errorf("apiVersion/kind is %q/%q, want %q/%q", m.APIVersion, m.Kind, APIVersion, Kind)
	}
	if _, err := m.CreatedTime(); err != nil {
		return nil, fmt.Errorf("created: %w", err)
	}
	return &m, nil
}
