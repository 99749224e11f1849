package main

import (
	"crypto"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
	"ward.dev/ward/internal/policyrepo"
)

func newTimestampCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "timestamp", Short: "TUF timestamp maintenance"}
	var (
		ro repoOptions
		o  outputOptions
	)
	refresh := &cobra.Command{
		Use:   "refresh [DIR]",
		Short: "Sign a new timestamp (and snapshot when due) so clients do not freeze",
		Long: `Sign a new timestamp, and a new snapshot when less than half of its validity
is left. Clients refuse expired metadata and keep enforcing the last verified
bundle, so run this on a schedule well inside the timestamp expiry (default
24h): for example hourly in CI. Warns about roles that expire within 30 days.
Needs the timestamp and snapshot keys.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, overrides, err := ro.load(args)
			if err != nil {
				return err
			}
			signers, err := repo.Signers(cmd.Context(), overrides, tuflayout.Timestamp, tuflayout.Snapshot)
			if err != nil {
				return err
			}
			res, err := repo.TUF().RefreshTimestamp(signers)
			if err != nil {
				return err
			}
			if err := ro.push(cmd, repo, fmt.Sprintf("timestamp v%d", res.TimestampVersion)); err != nil {
				return fmt.Errorf("signed timestamp v%d, but %w", res.TimestampVersion, err)
			}
			for _, role := range res.Expiring {
				progress(cmd, "warning: role %s expires within 30 days; re-sign it (publish or promote for an environment, ward root rotate for root and targets)", role)
			}
			return o.print(cmd, res, func(p printer) {
				p.line("timestamp v%d, expires %s", res.TimestampVersion, res.TimestampExpires.Format(time.RFC3339))
				if res.SnapshotRenewed {
					p.line("snapshot renewed")
				}
			})
		},
	}
	ro.bind(refresh)
	o.bind(refresh)
	cmd.AddCommand(refresh)
	return cmd
}

type rotateOptions struct {
	repoOptions
	outputOptions
	set        []string
	generate   []string
	thresholds []string
}

func newRootRotateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "root", Short: "TUF root maintenance"}
	o := &rotateOptions{}
	rotate := &cobra.Command{
		Use:   "rotate [DIR]",
		Short: "Change role keys or thresholds through a new, chained root",
		Long: `Change the keys or threshold of any role and sign the result:

  root, targets, snapshot, timestamp  a new root N+1.root.json, signed by the
                                      threshold of the current root keys AND of
                                      the new root keys, so clients follow the chain
  an environment                      a new targets role delegating to the new keys

Every role whose keys change is re-signed with its new keys, then snapshot
and timestamp. With no change it renews the root's expiry. ward.yaml is
updated to the new keys. The current root keys come from ward.yaml (or --key
root=...).`,
		Example: `  ward root rotate --generate timestamp .
  ward root rotate --set prod=keys/prod-a.key,keys/prod-b.key --threshold prod=2 .
  ward root rotate --generate root --generate root --threshold root=2 .`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	rotate.Flags().StringArrayVar(&o.set, "set", nil, "new keys of a role, ROLE=PATH|KMS-URI[,...] (repeatable)")
	rotate.Flags().StringArrayVar(&o.generate, "generate", nil, "generate a new key for ROLE into keys/ (repeatable; once per key)")
	rotate.Flags().StringArrayVar(&o.thresholds, "threshold", nil, "new threshold of a role, ROLE=N (repeatable)")
	o.repoOptions.bind(rotate)
	o.outputOptions.bind(rotate)
	cmd.AddCommand(rotate)
	return cmd
}

func (o *rotateOptions) run(cmd *cobra.Command, args []string) error {
	repo, overrides, err := o.load(args)
	if err != nil {
		return err
	}
	tuf := repo.TUF()
	envs, err := tuf.Envs()
	if err != nil {
		return err
	}
	roles := append(tuflayout.TopLevelRoles(), envs...)
	thresholds, err := parseRoleInts("threshold", o.thresholds, roles)
	if err != nil {
		return err
	}
	newRefs, err := policyrepo.ParseKeyOverrides(o.set)
	if err != nil {
		return fmt.Errorf("--set: %w", err)
	}
	for role := range newRefs {
		if err := checkRole("set", role, roles); err != nil {
			return err
		}
	}
	for _, role := range o.generate {
		if err := checkRole("generate", role, roles); err != nil {
			return err
		}
		rel, err := newKeyPath(repo, role)
		if err != nil {
			return err
		}
		if _, err := keys.Generate(filepath.Join(repo.Dir, rel), []byte(os.Getenv("WARD_KEY_PASSWORD"))); err != nil {
			return err
		}
		progress(cmd, "generated %s for %s", rel, role)
		newRefs[role] = append(newRefs[role], filepath.Join(repo.Dir, rel))
	}

	changes := map[string]tufrepo.KeyChange{}
	for role, n := range thresholds {
		changes[role] = tufrepo.KeyChange{Threshold: n}
	}
	// New keys are given as on the command line, like --key overrides.
	newSigners, err := repo.Signers(cmd.Context(), newRefs, slices.Sorted(maps.Keys(newRefs))...)
	if err != nil {
		return fmt.Errorf("new keys: %w", err)
	}
	for role, ss := range newSigners {
		ch := changes[role]
		for _, s := range ss {
			pub, err := s.PublicKey()
			if err != nil {
				return err
			}
			ch.Keys = append(ch.Keys, crypto.PublicKey(pub))
		}
		changes[role] = ch
	}
	// Current keys: the root's (the old root signs the new one), snapshot's
	// and timestamp's, and targets' and an environment's when a delegation
	// changes. A role with new keys signs with those instead, except root,
	// which needs both.
	need := []string{tuflayout.Root, tuflayout.Snapshot, tuflayout.Timestamp}
	for role := range changes {
		if !tuflayout.IsTopLevel(role) || role == tuflayout.Targets {
			need = append(need, tuflayout.Targets, role)
		}
	}
	need = slices.DeleteFunc(need, func(role string) bool {
		_, replaced := newRefs[role]
		return replaced && role != tuflayout.Root
	})
	signers, err := repo.Signers(cmd.Context(), overrides, need...)
	if err != nil {
		return err
	}
	for role, ss := range newSigners {
		signers[role] = append(signers[role], ss...)
	}
	res, err := tuf.Rotate(changes, signers)
	if err != nil {
		return err
	}
	for role, refs := range newRefs {
		repo.Config.Keys[role] = relativeRefs(repo.Dir, refs)
	}
	if len(newRefs) > 0 {
		if err := repo.Save(); err != nil {
			return fmt.Errorf("rotated, but failed to update %s: %w", policyrepo.FileName, err)
		}
	}
	if err := o.push(cmd, repo, fmt.Sprintf("root v%d", res.RootVersion)); err != nil {
		return fmt.Errorf("rotated to root v%d, but %w", res.RootVersion, err)
	}
	return o.print(cmd, res, func(p printer) {
		p.line("root v%d; signed anew: %s", res.RootVersion, strings.Join(res.Resigned, ", "))
		if len(newRefs) > 0 {
			p.line("%s now lists the new keys; keep the old ones until every client has updated", policyrepo.FileName)
		}
	})
}

// newKeyPath picks keys/<role>-<n>.key that does not exist yet.
func newKeyPath(repo *policyrepo.Repo, role string) (string, error) {
	for n := 2; n < 1000; n++ {
		rel := filepath.ToSlash(filepath.Join("keys", fmt.Sprintf("%s-%d.key", role, n)))
		if _, err := os.Stat(filepath.Join(repo.Dir, rel)); os.IsNotExist(err) {
			return rel, nil
		}
	}
	return "", fmt.Errorf("no free key file name for %s in keys/", role)
}

func relativeRefs(dir string, refs []string) []string {
	out := make([]string, 0, len(refs))
	absDir, _ := filepath.Abs(dir)
	for _, ref := range refs {
		if keys.IsKMS(ref) {
			out = append(out, ref)
			continue
		}
		abs, err := filepath.Abs(ref)
		if rel, rerr := filepath.Rel(absDir, abs); err == nil && rerr == nil && !strings.HasPrefix(rel, "..") {
			out = append(out, filepath.ToSlash(rel))
			continue
		}
		out = append(out, ref)
	}
	return out
}
