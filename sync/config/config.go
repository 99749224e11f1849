// Package config turns PolicySource specs (from a config file or the
// cluster) into the sync loop's specs: it resolves the pinned root and
// builds the source.
package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ggcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/registryauth"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// MaxConfigBytes bounds a config file.
const MaxConfigBytes = 4 << 20

// Load reads a config file of PolicySource documents (apiVersion
// ward.dev/v1alpha1), strictly.
func Load(path string) ([]v1alpha1.PolicySource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("failed to read %s: over %d bytes", path, MaxConfigBytes)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []v1alpha1.PolicySource
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(bytes.TrimSpace(doc)) == "---" {
			n--
			continue
		}
		var ps v1alpha1.PolicySource
		if err := yaml.UnmarshalStrict(doc, &ps); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if ps.APIVersion != v1alpha1.GroupVersion.String() || ps.Kind != v1alpha1.PolicySourceKind {
			return nil, fmt.Errorf("%s: document %d: apiVersion/kind is %q/%q, want %q/%q", path, n, ps.APIVersion, ps.Kind, v1alpha1.GroupVersion.String(), v1alpha1.PolicySourceKind)
		}
		out = append(out, ps)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PolicySource", path)
	}
	return out, nil
}

// Resolver reads what a spec refers to: files relative to the config
// file, and (in a cluster) ConfigMaps and Secrets.
type Resolver interface {
	// Path makes a path named in a spec usable (relative to a config
	// file, say).
	Path(path string) string
	// File reads a file named in a spec.
	File(path string) ([]byte, error)
	// ConfigMapKey reads a ConfigMap key.
	ConfigMapKey(name, key string) ([]byte, error)
	// Secret reads a Secret's data.
	Secret(name string) (map[string][]byte, error)
}

// FileResolver resolves relative paths against Dir and has no cluster.
type FileResolver struct{ Dir string }

// Path implements Resolver: relative paths are relative to Dir.
func (r FileResolver) Path(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(r.Dir, path)
}

// File implements Resolver.
func (r FileResolver) File(path string) ([]byte, error) { return os.ReadFile(r.Path(path)) }

// ConfigMapKey implements Resolver.
func (FileResolver) ConfigMapKey(name, _ string) ([]byte, error) {
	return nil, fmt.Errorf("rootConfigMap %s: there is no cluster in config-file mode; use root or rootFile", name)
}

// Secret implements Resolver: in config-file mode a secret is a folder
// secrets/NAME/ beside the config file, one file per key (as Kubernetes
// mounts secrets).
func (r FileResolver) Secret(name string) (map[string][]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("secretRef %q: not a secret name", name)
	}
	dir := filepath.Join(r.Dir, "secrets", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("secretRef %s: in config-file mode a secret is the folder %s: %w", name, dir, err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		// Kubernetes mounts keys as links into a hidden ..data folder.
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = data
	}
	return out, nil
}

// Spec turns a PolicySource into a sync spec; stateDir is the sync loop's
// (Git sources keep their clone there).
func Spec(ps v1alpha1.PolicySource, r Resolver, stateDir string) (syncer.Spec, error) {
	h := &hashingResolver{Resolver: r, h: sha256.New()}
	sp, err := spec(ps, h, stateDir)
	// What was read from Secrets and files: a rotated credential changes
	// the spec though the PolicySource did not.
	sp.Credentials = hex.EncodeToString(h.h.Sum(nil))
	return sp, err
}

// hashingResolver hashes everything read through it.
type hashingResolver struct {
	Resolver
	h hash.Hash
}

func (r *hashingResolver) Secret(name string) (map[string][]byte, error) {
	data, err := r.Resolver.Secret(name)
	fmt.Fprintf(r.h, "secret\x00%s\x00", name)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(r.h, "%s\x00%d\x00", k, len(data[k]))
		r.h.Write(data[k])
	}
	return data, err
}

func spec(ps v1alpha1.PolicySource, r Resolver, stateDir string) (syncer.Spec, error) {
	s := ps.Spec
	name := ps.Name
	sp := syncer.Spec{Name: name, Env: s.Env, OnExpiry: s.OnExpiry, Suspend: s.Suspend}
	if s.Interval != nil {
		sp.Interval = s.Interval.Duration
	}
	if s.Timeout != nil {
		sp.Timeout = s.Timeout.Duration
	}
	if sp.Interval != 0 && sp.Interval < time.Second {
		return sp, fmt.Errorf("policy source %s: interval %s is under a second", name, sp.Interval)
	}
	var err error
	switch {
	case count(s.Root != "", s.RootFile != "", s.RootConfigMap != nil) != 1:
		return sp, fmt.Errorf("policy source %s: give exactly one of root, rootFile and rootConfigMap", name)
	case s.Root != "":
		sp.Root = []byte(s.Root)
	case s.RootFile != "":
		sp.Root, err = r.File(s.RootFile)
	default:
		sp.Root, err = r.ConfigMapKey(s.RootConfigMap.Name, s.RootConfigMap.Key)
	}
	if err != nil {
		return sp, fmt.Errorf("policy source %s: failed to read the pinned root: %w", name, err)
	}
	if count(s.Dir != nil, s.Git != nil, s.OCI != nil) != 1 {
		return sp, fmt.Errorf("policy source %s: give exactly one of dir, git and oci", name)
	}
	switch {
	case s.Dir != nil:
		if s.Dir.Path == "" {
			return sp, fmt.Errorf("policy source %s: dir.path is required", name)
		}
		sp.Source = source.Dir{Path: r.Path(s.Dir.Path)}
	case s.Git != nil:
		sp.Source, err = gitSource(name, s.Git, r, filepath.Join(stateDir, "git", name))
	case s.OCI != nil:
		sp.Source, err = ociSource(name, s.OCI, r)
	}
	return sp, err
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func gitSource(name string, g *v1alpha1.GitSource, r Resolver, cacheDir string) (source.Source, error) {
	if g.URL == "" {
		return nil, fmt.Errorf("policy source %s: git.url is required", name)
	}
	if count(g.Branch != "", g.Tag != "", g.Commit != "") > 1 {
		return nil, fmt.Errorf("policy source %s: give at most one of git.branch, git.tag and git.commit", name)
	}
	src := &source.Git{URL: g.URL, Branch: g.Branch, Tag: g.Tag, Commit: g.Commit, Path: g.Path, CacheDir: cacheDir}
	if g.SecretRef == nil {
		return src, nil
	}
	data, err := r.Secret(g.SecretRef.Name)
	if err != nil {
		return nil, fmt.Errorf("policy source %s: %w", name, err)
	}
	if src.Auth, err = source.GitAuth(g.URL, data); err != nil {
		return nil, fmt.Errorf("policy source %s: secret %s: %w", name, g.SecretRef.Name, err)
	}
	// Flux's GitRepository key for a private CA.
	src.CABundle = data["ca.crt"]
	return src, nil
}

func ociSource(name string, o *v1alpha1.OCISource, r Resolver) (source.Source, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("policy source %s: oci.url is required", name)
	}
	src := &source.OCI{URL: o.URL, Insecure: o.Insecure}
	switch o.Provider {
	case "", "generic":
	case string(registryauth.AWS), string(registryauth.Azure), string(registryauth.GCP):
		if o.SecretRef != nil {
			return nil, fmt.Errorf("policy source %s: oci.secretRef and oci.provider %s exclude each other: the credentials come from one of them", name, o.Provider)
		}
		p := registryauth.Provider(o.Provider)
		if ref, err := ggcrname.ParseReference(strings.TrimPrefix(o.URL, "oci://")); err == nil && !p.Handles(ref.Context().RegistryStr()) {
			return nil, fmt.Errorf("policy source %s: oci.provider %s: %s is not a registry of that cloud", name, o.Provider, ref.Context().RegistryStr())
		}
		src.Keychain = registryauth.New([]registryauth.Provider{p})
	default:
		return nil, fmt.Errorf("policy source %s: oci.provider is %q, want generic, aws, azure or gcp", name, o.Provider)
	}
	if o.Verify != nil {
		pk, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(o.Verify.Key))
		if err != nil {
			return nil, fmt.Errorf("policy source %s: oci.verify.key is not a PEM public key", name)
		}
		src.VerifyKey = pk
	}
	if o.SecretRef != nil {
		data, err := r.Secret(o.SecretRef.Name)
		if err != nil {
			return nil, fmt.Errorf("policy source %s: %w", name, err)
		}
		cfg, ok := data[".dockerconfigjson"]
		if !ok {
			return nil, fmt.Errorf("policy source %s: secret %s has no .dockerconfigjson", name, o.SecretRef.Name)
		}
		src.DockerConfig = cfg
	}
	if o.CertSecretRef != nil {
		data, err := r.Secret(o.CertSecretRef.Name)
		if err != nil {
			return nil, fmt.Errorf("policy source %s: %w", name, err)
		}
		ca, ok := data["ca.crt"]
		if !ok {
			return nil, fmt.Errorf("policy source %s: secret %s has no ca.crt", name, o.CertSecretRef.Name)
		}
		src.CAPEM = ca
	}
	return src, nil
}
