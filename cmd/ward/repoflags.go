package main

import (
	"fmt"
	"os"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/sync/source"
)

// repoOptions locate a policy repository, override its keys, and push it
// to its remotes after signing.
type repoOptions struct {
	keys   []string
	noPush bool
}

func (o *repoOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.keys, "key", nil, "signing keys of a role, ROLE=PATH|KMS-URI[,...] (repeatable; replaces ward.yaml's for that role)")
	cmd.Flags().BoolVar(&o.noPush, "no-push", false, "do not push the TUF repository to ward.yaml's remotes")
}

// push sends the TUF repository to every remote of ward.yaml. Git
// credentials come from WARD_GIT_USERNAME and WARD_GIT_PASSWORD (a token
// goes in the password), or WARD_GIT_SSH_KEY and WARD_GIT_KNOWN_HOSTS
// (files); registries' from the Docker config.
func (o *repoOptions) push(cmd *cobra.Command, repo *policyrepo.Repo, what string) error {
	if o.noPush || len(repo.Config.Remotes) == 0 {
		return nil
	}
	for i, r := range repo.Config.Remotes {
		switch {
		case r.Git != nil:
			auth, err := gitAuthFromEnv(r.Git.URL)
			if err != nil {
				return fmt.Errorf("remotes[%d]: %w", i, err)
			}
			progress(cmd, "pushing %s to git %s %s", repo.TUFDir(), r.Git.URL, orDefaultString(r.Git.Branch, "main"))
			commit, err := source.PushGit(cmd.Context(), repo.TUFDir(), &source.Git{URL: r.Git.URL, Branch: r.Git.Branch, Path: r.Git.Path, Auth: auth}, "ward: "+what)
			if err != nil {
				return fmt.Errorf("remotes[%d]: %w", i, err)
			}
			if commit == "" {
				progress(cmd, "  unchanged")
			} else {
				progress(cmd, "  pushed commit %s", commit)
			}
		case r.OCI != nil:
			progress(cmd, "pushing %s to %s", repo.TUFDir(), r.OCI.URL)
			d, err := source.PushOCI(cmd.Context(), repo.TUFDir(), &source.OCI{URL: r.OCI.URL, Insecure: r.OCI.Insecure, Keychain: authn.DefaultKeychain})
			if err != nil {
				return fmt.Errorf("remotes[%d]: %w", i, err)
			}
			progress(cmd, "  pushed %s", d)
		default:
			return fmt.Errorf("remotes[%d] in %s: give git or oci", i, policyrepo.FileName)
		}
	}
	return nil
}

func orDefaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func gitAuthFromEnv(url string) (transport.AuthMethod, error) {
	data := map[string][]byte{}
	if v := os.Getenv("WARD_GIT_USERNAME"); v != "" {
		data["username"] = []byte(v)
	}
	if v := os.Getenv("WARD_GIT_PASSWORD"); v != "" {
		data["password"] = []byte(v)
	}
	for env, key := range map[string]string{"WARD_GIT_SSH_KEY": "identity", "WARD_GIT_KNOWN_HOSTS": "known_hosts"} {
		if p := os.Getenv(env); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", env, err)
			}
			data[key] = b
		}
	}
	if len(data) == 0 {
		return nil, nil
	}
	return source.GitAuth(url, data)
}

// load reads ward.yaml from the folder in args (default ".") and parses
// the key overrides.
func (o *repoOptions) load(args []string) (*policyrepo.Repo, map[string][]string, error) {
	dir := "."
	if len(args) > 0 {
		dir = args[0]
	}
	overrides, err := policyrepo.ParseKeyOverrides(o.keys)
	if err != nil {
		return nil, nil, err
	}
	repo, err := policyrepo.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	return repo, overrides, nil
}
