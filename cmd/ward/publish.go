package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
	"ward.dev/ward/internal/policyrepo"
)

func printRelease(o *outputOptions, cmd *cobra.Command, verb string, rel *tufrepo.Release) error {
	return o.print(cmd, rel, func(p printer) {
		if rel.Unchanged {
			p.line("%s v%d already serves these policies (%s): nothing signed", rel.Env, rel.Version, rel.Digest)
			return
		}
		p.line("%s %s v%d", verb, rel.Env, rel.Version)
		p.line("  digest:  %s", rel.Digest)
		p.line("  commit:  %s", orNone(rel.Commit))
		if rel.PromotedFrom != nil {
			p.line("  from:    %s (same bytes)", rel.PromotedFrom)
		}
		if rel.RestoredFrom != 0 {
			p.line("  restores: v%d", rel.RestoredFrom)
		}
		p.line("  expires: %s (role %s v%d)", rel.Expires.Format(time.RFC3339), rel.Env, rel.RoleVersion)
	})
}

// release loads the repository, checks that every environment in envs
// exists, loads the keys of signer (an environment) with snapshot and
// timestamp, and runs op with them.
func (ro *repoOptions) release(cmd *cobra.Command, args, envs []string, signer string, op func(*policyrepo.Repo, *tufrepo.Repo, tufrepo.Signers) (*tufrepo.Release, error)) (*tufrepo.Release, error) {
	repo, overrides, err := ro.load(args)
	if err != nil {
		return nil, err
	}
	// Name a wrong environment before asking for keys.
	tuf := repo.TUF()
	if err := tuf.CheckEnvs(envs...); err != nil {
		return nil, err
	}
	signers, err := repo.Signers(cmd.Context(), overrides, signer, tuflayout.Snapshot, tuflayout.Timestamp)
	if err != nil {
		return nil, err
	}
	rel, err := op(repo, tuf, signers)
	if err != nil {
		return nil, err
	}
	// Pushed also when nothing was signed: a push that failed before is
	// made by running the command again.
	if err := ro.push(cmd, repo, fmt.Sprintf("%s v%d %s", rel.Env, rel.Version, rel.Digest)); err != nil {
		return nil, fmt.Errorf("signed %s v%d, but %w (run the command again, or push tuf/ yourself)", rel.Env, rel.Version, err)
	}
	return rel, nil
}

func newPublishCommand() *cobra.Command {
	var (
		env   string
		allow bool
		ro    repoOptions
		o     outputOptions
	)
	cmd := &cobra.Command{
		Use:   "publish --env ENV [DIR]",
		Short: "Build the policies and sign the bundle into ENV as its next version",
		Long: `Build DIR's policies into a bundle and sign it into the TUF repository as
ENV's next version: ENV's role (its keys), then snapshot and timestamp.
Publishing the policies ENV already serves signs nothing, even from a later
commit that changed only other files (the tuf/ folder CI commits back, a
README). Print env, version
and digest. Needs the keys of ENV, snapshot and timestamp (ward.yaml or
--key). Then the TUF repository is pushed to ward.yaml's remotes (Git
branches, OCI artifacts) unless --no-push; without remotes, commit the tuf/
folder (controllers can follow it in the policy repository itself).`,
		Example: "  ward publish --env dev .\n  ward publish --env dev --key dev=awskms:///alias/ward-dev .",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return errors.New("--env is required")
			}
			rel, err := ro.release(cmd, args, []string{env}, env, func(repo *policyrepo.Repo, tuf *tufrepo.Repo, signers tufrepo.Signers) (*tufrepo.Release, error) {
				progress(cmd, "building %s", repo.PoliciesDir())
				b, err := buildChecked(repo.PoliciesDir(), allow)
				if err != nil {
					return nil, err
				}
				progress(cmd, "built %s: %d policies, commit %s", b.Digest, len(b.Manifest.Policies), orNone(b.Manifest.Source.Commit))
				return tuf.Publish(env, b.Bytes, signers)
			})
			if err != nil {
				return err
			}
			return printRelease(&o, cmd, "published", rel)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to publish to")
	cmd.Flags().BoolVar(&allow, "allow-uncommitted", false, "publish even if the policy folder differs from the Git commit")
	ro.bind(cmd)
	o.bind(cmd)
	return cmd
}

func newPromoteCommand() *cobra.Command {
	var (
		from, to string
		ro       repoOptions
		o        outputOptions
	)
	cmd := &cobra.Command{
		Use:   "promote --from A --to B [DIR]",
		Short: "Sign A's current bundle into B: the same bytes, nothing rebuilt",
		Long: `Promote the bundle environment A serves to environment B. B's role lists the
same hash A's does, as B's next version, with promotedFrom naming A and its
version. A's bundle is verified against its signed metadata first. Needs the
keys of B, snapshot and timestamp.`,
		Example: "  ward promote --from staging --to prod .",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return errors.New("--from and --to are required")
			}
			rel, err := ro.release(cmd, args, []string{from, to}, to, func(_ *policyrepo.Repo, tuf *tufrepo.Repo, signers tufrepo.Signers) (*tufrepo.Release, error) {
				return tuf.Promote(from, to, signers)
			})
			if err != nil {
				return err
			}
			return printRelease(&o, cmd, "promoted to", rel)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "environment whose bundle is promoted")
	cmd.Flags().StringVar(&to, "to", "", "environment to sign it into")
	ro.bind(cmd)
	o.bind(cmd)
	return cmd
}

func newRollbackCommand() *cobra.Command {
	var (
		env string
		to  int64
		ro  repoOptions
		o   outputOptions
	)
	cmd := &cobra.Command{
		Use:   "rollback --env ENV --to-version N [DIR]",
		Short: "Re-sign the bundle that was ENV's version N as a new, higher version",
		Long: `Roll ENV back to the policies of its version N by signing that bundle again
as ENV's next version. Clients never accept a lower version (that is a
rollback attack), so going back means going forward. See the versions with
ward history. The usual way back is a git revert, published as usual.`,
		Example: "  ward rollback --env prod --to-version 3 .",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" || to < 1 {
				return errors.New("--env and --to-version (a version number such as 3) are required")
			}
			rel, err := ro.release(cmd, args, []string{env}, env, func(_ *policyrepo.Repo, tuf *tufrepo.Repo, signers tufrepo.Signers) (*tufrepo.Release, error) {
				return tuf.Rollback(env, to, signers)
			})
			if err != nil {
				return err
			}
			return printRelease(&o, cmd, "rolled back", rel)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment to roll back")
	cmd.Flags().Int64Var(&to, "to-version", 0, "the earlier bundle version to restore")
	ro.bind(cmd)
	o.bind(cmd)
	return cmd
}

func newHistoryCommand() *cobra.Command {
	var (
		env string
		ro  repoOptions
		o   outputOptions
	)
	cmd := &cobra.Command{
		Use:   "history --env ENV [DIR]",
		Short: "List the bundle versions ENV has served",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return errors.New("--env is required")
			}
			repo, _, err := ro.load(args)
			if err != nil {
				return err
			}
			hist, err := repo.TUF().History(env)
			if err != nil {
				return err
			}
			return o.print(cmd, hist, func(p printer) {
				if len(hist) == 0 {
					p.line("%s has no bundle yet", env)
					return
				}
				p.line("%-8s %-73s %-14s %s", "VERSION", "DIGEST", "COMMIT", "NOTE")
				for _, r := range hist {
					note := ""
					switch {
					case r.PromotedFrom != nil:
						note = "promoted from " + r.PromotedFrom.String()
					case r.RestoredFrom != 0:
						note = fmt.Sprintf("restores v%d", r.RestoredFrom)
					}
					c := r.Commit
					if len(c) > 12 {
						c = c[:12]
					}
					p.line("%-8s %-73s %-14s %s", fmt.Sprintf("v%d", r.Version), r.Digest, orNone(c), note)
				}
			})
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment")
	ro.bind(cmd)
	o.bind(cmd)
	return cmd
}
