package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/policies"
	"ward.dev/ward/policies/sigstoretuf"
)

func newBundleCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bundle", Short: "Build, inspect and check policy bundles"}
	cmd.AddCommand(newBundleBuildCommand(), newBundleInspectCommand(), newBundleVerifyCommand())
	return cmd
}

// policyFolder is the policy folder of DIR: ward.yaml's policies folder,
// else DIR/policies, else DIR itself.
func policyFolder(dir string) (string, error) {
	repo, err := policyrepo.Load(dir)
	if err == nil {
		return repo.PoliciesDir(), nil
	}
	if !errors.Is(err, policyrepo.ErrNoConfig) {
		return "", err
	}
	if info, err := os.Stat(filepath.Join(dir, "policies")); err == nil && info.IsDir() {
		return filepath.Join(dir, "policies"), nil
	}
	return dir, nil
}

func buildOptions(allowUncommitted bool) []bundle.BuildOption {
	if allowUncommitted {
		return []bundle.BuildOption{bundle.WithAllowUncommitted()}
	}
	return nil
}

func newBundleBuildCommand() *cobra.Command {
	var out string
	var allow bool
	cmd := &cobra.Command{
		Use:   "build [DIR] -o FILE",
		Short: "Build the deterministic bundle of DIR's policies",
		Long: `Build the bundle of DIR's policies (ward.yaml's policy folder, else DIR/policies,
else DIR) and print its digest. The same commit gives the same bytes on any
machine: entries sorted, times fixed to the commit time, owners and modes
fixed. Inside a Git checkout the policy folder must match the commit checked
out, or the bundle would claim a commit it does not hold
(--allow-uncommitted overrides).`,
		Example: "  ward bundle build . -o bundle.tar.gz",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--output/-o FILE is required")
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			folder, err := policyFolder(dir)
			if err != nil {
				return err
			}
			b, err := buildChecked(folder, allow)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b.Bytes, 0o644); err != nil {
				return fmt.Errorf("failed to write %s: %w", out, err)
			}
			progress(cmd, "built %s: %d policies from %s (commit %s)", out, len(b.Manifest.Policies), folder, orNone(b.Manifest.Source.Commit))
			printer{cmd.OutOrStdout()}.line("%s", b.Digest)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "bundle file to write")
	cmd.Flags().BoolVar(&allow, "allow-uncommitted", false, "build even if the policy folder differs from the Git commit")
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func readBundleFile(path string) (*bundle.Contents, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bundle file %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	return bundle.Read(bytes.NewReader(data))
}

func newBundleInspectCommand() *cobra.Command {
	var o outputOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a bundle's manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readBundleFile(args[0])
			if err != nil {
				return err
			}
			v := struct {
				Digest   string          `json:"digest"`
				Size     int64           `json:"size"`
				Manifest bundle.Manifest `json:"manifest"`
			}{c.Digest, c.Size, c.Manifest}
			return o.print(cmd, v, func(p printer) {
				m := c.Manifest
				p.line("digest:     %s", c.Digest)
				p.line("size:       %d bytes", c.Size)
				p.line("repository: %s", orNone(m.Source.Repository))
				p.line("commit:     %s", orNone(m.Source.Commit))
				p.line("path:       %s", m.Source.Path)
				p.line("created:    %s", m.Created)
				p.line("policies:   %d", len(m.Policies))
				for _, f := range m.Policies {
					p.line("  %s  sha256:%s", f.Path, f.SHA256)
				}
			})
		},
	}
	o.bind(cmd)
	return cmd
}

func newBundleVerifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a bundle's internal integrity (exit 1 if broken)",
		Long: `Check a bundle as the controller reads it: size limits, safe paths, no links
or devices, no duplicates, every file listed in the manifest with a matching
sha256 and nothing unlisted. This says nothing about who signed it: use
ward verify for that.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("bundle file %s: %w", args[0], err)
			}
			c, err := readBundleFile(args[0])
			if err != nil {
				return failed(err)
			}
			printer{cmd.OutOrStdout()}.line("ok %s: %d policies, commit %s", c.Digest, len(c.Manifest.Policies), orNone(c.Manifest.Source.Commit))
			return nil
		},
	}
	return cmd
}

// buildChecked builds a bundle and compiles its policies as the controller
// will, so that nothing is built or signed that the controller would
// refuse to enforce.
func buildChecked(folder string, allowUncommitted bool) (*bundle.Built, error) {
	b, err := bundle.Build(folder, buildOptions(allowUncommitted)...)
	if err != nil {
		return nil, err
	}
	c, err := bundle.Read(bytes.NewReader(b.Bytes))
	if err != nil {
		return nil, err
	}
	// A remote TrustRoot's mirror is read (the controller reads it again
	// in its sync loop): a bundle whose mirror does not verify is not
	// signed.
	if _, err := policies.Compile(onDisk(c.Policies(), folder), policies.WithRemoteTrustRoots(context.Background(), &sigstoretuf.Remotes{})); err != nil {
		return nil, fmt.Errorf("the policies of %s do not compile: %w", folder, err)
	}
	return b, nil
}
