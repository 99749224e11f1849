package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/policies"
	"ward.dev/ward/policies/sigstoretuf"
	"ward.dev/ward/registryauth"
)

// policySourceOptions says where the offline commands take their policies
// from: a bundle file, an environment of a TUF repository (verified as the
// controller verifies it), or a folder of policy files.
type policySourceOptions struct {
	bundleFile  string
	repo        string
	env         string
	root        string
	stateDir    string
	policiesDir string
}

func (o *policySourceOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.bundleFile, "bundle", "", "policy bundle file (integrity-checked, not signature-checked)")
	f.StringVar(&o.repo, "repo", "", "policy repository (with ward.yaml) or TUF repository folder; use with --env")
	f.StringVar(&o.env, "env", "", "environment whose current bundle to verify and use (with --repo)")
	f.StringVar(&o.root, "root", "", "pinned root.json for --repo (default: the repository's metadata/1.root.json)")
	f.StringVar(&o.stateDir, "state-dir", "", "TUF client state folder for --repo (default: a fresh temporary one)")
	f.StringVar(&o.policiesDir, "policies", "", "folder of policy files (a working tree, before it is published)")
}

// load compiles the chosen policies into an admission state.
func (o *policySourceOptions) load(cmd *cobra.Command) (*admission.State, error) {
	n := 0
	for _, set := range []bool{o.bundleFile != "", o.repo != "" || o.env != "", o.policiesDir != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("choose the policies with one of --bundle FILE, --repo DIR --env ENV, or --policies DIR")
	}
	var docs []bundle.Document
	var prov admission.Provenance
	switch {
	case o.bundleFile != "":
		f, err := os.Open(o.bundleFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read the bundle: %w", err)
		}
		defer f.Close()
		c, err := bundle.Read(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", o.bundleFile, err)
		}
		docs = c.Policies()
		prov = admission.Provenance{Digest: c.Digest, Commit: c.Manifest.Source.Commit}
	case o.policiesDir != "":
		var err error
		if docs, err = bundle.ReadPolicyDir(o.policiesDir); err != nil {
			return nil, err
		}
		docs = onDisk(docs, o.policiesDir)
		prov = admission.Provenance{WorkingTree: o.policiesDir}
	default:
		if o.repo == "" || o.env == "" {
			return nil, errors.New("--repo and --env go together")
		}
		tufDir := o.repo
		if repo, err := policyrepo.Load(o.repo); err == nil {
			tufDir = repo.TUFDir()
		} else if !errors.Is(err, policyrepo.ErrNoConfig) {
			return nil, err
		} else if _, err := os.Stat(filepath.Join(o.repo, "metadata")); err != nil {
			return nil, fmt.Errorf("%s is neither a policy repository (ward.yaml) nor a TUF repository (metadata/)", o.repo)
		}
		b, _, err := verifyEnv(cmd, tufDir, o.root, o.stateDir, o.env)
		if err != nil {
			// A bundle that does not verify leaves nothing to check
			// against: an error (exit 2), not a denial.
			return nil, asError(err)
		}
		docs = b.Policies()
		prov = admission.Provenance{Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit()}
	}
	set, err := policies.Compile(docs, policies.WithRemoteTrustRoots(cmd.Context(), &sigstoretuf.Remotes{}))
	if err != nil {
		return nil, err
	}
	return admission.NewState(set, prov), nil
}

// onDisk renames a policy folder's documents from their paths in a bundle
// ("policies/team.yaml") to their files on disk, so that compile errors
// name the file a person edits.
func onDisk(docs []bundle.Document, folder string) []bundle.Document {
	out := make([]bundle.Document, len(docs))
	for i, d := range docs {
		d.Path = filepath.Join(folder, filepath.FromSlash(strings.TrimPrefix(d.Path, bundle.PoliciesDir+"/")))
		out[i] = d
	}
	return out
}

// registryOptions are the offline commands' registry settings.
type registryOptions struct {
	caFile  string
	timeout time.Duration
	cloud   string
}

func (o *registryOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.caFile, "registry-ca", "", "PEM file of CAs to trust for registry TLS (default: the system's)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "time limit for each object's decision")
	bindCloudCredentials(cmd, &o.cloud)
}

// bindCloudCredentials binds the flag naming the clouds whose registry
// credentials are asked for.
func bindCloudCredentials(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "cloud-registry-credentials", "aws,azure,gcp",
		"clouds whose registry credentials are asked for after the Docker config or pull secrets, from the workload identity or environment: aws (ECR), azure (ACR), gcp (Artifact Registry, GCR), or none")
}

// cloudKeychain is the keychain of --cloud-registry-credentials, nil for
// none.
func cloudKeychain(flag string) (authn.Keychain, error) {
	providers, err := registryauth.ParseProviders(flag)
	if err != nil {
		return nil, fmt.Errorf("--cloud-registry-credentials: %w", err)
	}
	if len(providers) == 0 {
		return nil, nil
	}
	return registryauth.New(providers), nil
}

// deciderWith makes the webhook's decider with the Docker config's
// registry credentials, then the clouds'.
func (o *registryOptions) deciderWith(nsLabels admission.NamespaceLabelsFunc, secrets admission.SecretFunc) (*admission.Decider, error) {
	var opts []imageverify.Option
	if o.caFile != "" {
		pemData, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read --registry-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("--registry-ca %s holds no PEM certificates", o.caFile)
		}
		opts = append(opts, imageverify.WithRootCAs(pool))
	}
	dopts := []admission.DeciderOption{admission.WithNamespaceLabels(nsLabels)}
	if secrets != nil {
		dopts = append(dopts, admission.WithSecrets(secrets))
	}
	cloud, err := cloudKeychain(o.cloud)
	if err != nil {
		return nil, err
	}
	if cloud != nil {
		dopts = append(dopts, admission.WithFallbackKeychain(cloud))
	}
	return admission.NewDecider(imageverify.New(opts...), dopts...), nil
}
