package main

import (
	"github.com/spf13/cobra"

	"ward.dev/ward/internal/policyrepo"
)

// repoOptions locate a policy repository and override its keys.
type repoOptions struct {
	keys []string
}

func (o *repoOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.keys, "key", nil, "signing keys of a role, ROLE=PATH|KMS-URI[,...] (repeatable; replaces ward.yaml's for that role)")
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
