package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/internal/policyrepo"
)

type verifyOptions struct {
	outputOptions
	env      string
	root     string
	repoDir  string
	stateDir string
	save     string
}

func newVerifyCommand() *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify --env ENV [DIR]",
		Short: "Verify ENV's bundle through a pinned root, as the controller does",
		Long: `Verify ENV's bundle with the controller's own TUF client: root chain,
timestamp, snapshot, targets, ENV's role (signatures and thresholds, versions,
expiry), then the bundle's length, hash and contents. Exit 1 if verification
fails, 2 on bad input.

The root defaults to the repository's own metadata/1.root.json; pass the root
your cluster pins with --root. With --state-dir the trusted metadata and the
accepted bundle versions persist between runs, so a rollback of the
repository is refused as the controller would refuse it.`,
		Example: `  ward verify --env prod .
  ward verify --env prod --repo ./tuf --root pinned-root.json --state-dir .ward-state -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	cmd.Flags().StringVar(&o.env, "env", "", "environment to verify")
	cmd.Flags().StringVar(&o.root, "root", "", "pinned root.json (default: the repository's metadata/1.root.json)")
	cmd.Flags().StringVar(&o.repoDir, "repo", "", "TUF repository folder (default: ward.yaml's tuf folder in DIR)")
	cmd.Flags().StringVar(&o.stateDir, "state-dir", "", "folder that keeps trusted metadata between runs (default: a fresh temporary one)")
	cmd.Flags().StringVar(&o.save, "save", "", "write the verified bundle to this file")
	o.outputOptions.bind(cmd)
	return cmd
}

type verified struct {
	Env          string    `json:"env"`
	Version      int64     `json:"version"`
	Digest       string    `json:"digest"`
	Commit       string    `json:"commit,omitempty"`
	Repository   string    `json:"repository,omitempty"`
	PromotedFrom string    `json:"promotedFrom,omitempty"`
	Policies     int       `json:"policies"`
	RoleVersion  int64     `json:"roleVersion"`
	Expires      time.Time `json:"expires"`
}

func (o *verifyOptions) run(cmd *cobra.Command, args []string) error {
	if o.env == "" {
		return errors.New("--env is required")
	}
	repoDir := o.repoDir
	if repoDir == "" {
		dir := "."
		if len(args) == 1 {
			dir = args[0]
		}
		repo, err := policyrepo.Load(dir)
		if err != nil {
			return fmt.Errorf("%w (or pass --repo)", err)
		}
		repoDir = repo.TUFDir()
	}
	b, target, err := verifyEnv(cmd, repoDir, o.root, o.stateDir, o.env)
	if err != nil {
		return err
	}
	if o.save != "" {
		if err := os.WriteFile(o.save, target.Bytes(), 0o644); err != nil {
			return err
		}
	}
	v := verified{
		Env: b.Env(), Version: b.Version(), Digest: b.Digest(), Commit: b.Commit(), Repository: b.Manifest().Source.Repository,
		PromotedFrom: b.Custom().PromotedFrom.String(), Policies: len(b.Policies()), RoleVersion: target.RoleVersion(), Expires: target.Expires(),
	}
	return o.print(cmd, v, func(p printer) {
		p.line("verified %s v%d", v.Env, v.Version)
		p.line("  digest:   %s", v.Digest)
		p.line("  commit:   %s", orNone(v.Commit))
		if v.PromotedFrom != "" {
			p.line("  from:     %s", v.PromotedFrom)
		}
		p.line("  policies: %d", v.Policies)
		p.line("  expires:  %s (role %s v%d)", v.Expires.Format(time.RFC3339), v.Env, v.RoleVersion)
	})
}

// verifyEnv runs the controller's TUF client over a repository folder and
// opens ENV's bundle. A verification failure is a negative verdict (exit 1).
func verifyEnv(cmd *cobra.Command, repoDir, rootPath, stateDir, env string) (*bundle.Verified, *tufclient.Target, error) {
	if rootPath == "" {
		rootPath = filepath.Join(repoDir, "metadata", "1.root.json")
		progress(cmd, "trusting %s; pass --root with the root your cluster pins", rootPath)
	}
	root, err := os.ReadFile(rootPath)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the pinned root: %w", err)
	}
	if stateDir == "" {
		if stateDir, err = os.MkdirTemp("", "ward-verify-"); err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(stateDir)
	}
	client, err := tufclient.New(root, tufclient.DirFetcher{Dir: repoDir}, stateDir)
	if err != nil {
		return nil, nil, err
	}
	target, err := client.Update(cmd.Context(), env)
	if errors.Is(err, tufclient.ErrUnknownEnv) {
		return nil, nil, err // bad input, not a failed verification
	}
	if err != nil {
		return nil, nil, failed(err)
	}
	b, err := bundle.Open(target)
	if err != nil {
		return nil, nil, failed(err)
	}
	return b, target, nil
}
