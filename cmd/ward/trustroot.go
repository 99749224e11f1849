package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"ward.dev/ward/policies"
	"ward.dev/ward/policies/sigstoretuf"
)

func newTrustRootCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "trustroot", Short: "Sigstore trust roots for keyless policies"}
	var from, name, out, mirror, tufRoot string
	var tufOpts sigstoretuf.Options
	imp := &cobra.Command{
		Use:   "import (--trusted-root FILE | --tuf-mirror URL|DIR --tuf-root FILE) [-o FILE] [--name NAME]",
		Short: "Write Sigstore trust material as a TrustRoot document for the policy folder",
		Long: `Write Sigstore trust material as a policy-controller TrustRoot document
(sigstoreKeys): the Fulcio certificate chains, the Rekor and certificate
transparency log keys, the timestamp authorities. It is read from either
  --trusted-root FILE   a trusted_root.json as Sigstore's TUF repository
                        serves it (cosign and sigstore-go read the same file),
  --tuf-mirror URL|DIR  a Sigstore TUF repository (an http(s) mirror or a
                        folder), verified with go-tuf from the root pinned by
                        --tuf-root through timestamp, snapshot and targets,
                        expiry included; its trusted_root.json target is
                        read, or the older targets marked Fulcio, Rekor,
                        CTFE and TSA.
Commit the document to the policy folder: it then changes only by pull
request and is protected by the bundle's own TUF chain; the controller never
fetches Sigstore's trust material at admission time.

Keyless authorities of ClusterImagePolicies refer to it by trustRootRef; one
with neither ca-cert nor trustRootRef (Sigstore's public-good instance, as
policy-controller trusts it by default) uses the TrustRoot named
` + policies.DefaultTrustRoot + `, the default --name.`,
		Example: `  # the trusted root cosign keeps after "cosign initialize":
  ward trustroot import --trusted-root ~/.sigstore/root/tuf-repo-cdn.sigstore.dev/targets/trusted_root.json \
    -o policies/` + policies.DefaultTrustRoot + `.yaml

  # from Sigstore's TUF mirror, verified from a root you pinned:
  ward trustroot import --tuf-mirror https://tuf-repo-cdn.sigstore.dev --tuf-root root.json \
    -o policies/` + policies.DefaultTrustRoot + `.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var tr *root.TrustedRoot
			switch {
			case (from == "") == (mirror == ""):
				return errors.New("give --trusted-root FILE or --tuf-mirror URL|DIR (with --tuf-root FILE)")
			case from != "":
				var err error
				if tr, err = root.NewTrustedRootFromPath(from); err != nil {
					return fmt.Errorf("failed to read the trusted root %s: %w", from, err)
				}
			default:
				if tufRoot == "" {
					return errors.New("--tuf-mirror needs --tuf-root FILE: the TUF root you trust, as the mirror's 1.root.json or a later one you verified")
				}
				rootJSON, err := os.ReadFile(tufRoot)
				if err != nil {
					return fmt.Errorf("failed to read --tuf-root: %w", err)
				}
				progress(cmd, "verifying the TUF repository at %s", mirror)
				if tr, err = sigstoretuf.FromMirror(cmd.Context(), mirror, rootJSON, tufOpts, time.Now()); err != nil {
					return fmt.Errorf("failed to read trust material from %s: %w", mirror, err)
				}
				from = mirror
			}
			doc, err := policies.TrustRootFromSigstore(tr, name)
			if err != nil {
				return fmt.Errorf("failed to convert the trusted root %s: %w", from, err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(doc)
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return err
			}
			progress(cmd, "wrote TrustRoot %s (%d Fulcio CAs, %d Rekor logs, %d CT logs) to %s", name,
				len(tr.FulcioCertificateAuthorities()), len(tr.RekorLogs()), len(tr.CTLogs()), out)
			return nil
		},
	}
	imp.Flags().StringVar(&from, "trusted-root", "", "a Sigstore trusted_root.json")
	imp.Flags().StringVar(&mirror, "tuf-mirror", "", "a Sigstore TUF repository: an http(s) URL or a folder")
	imp.Flags().StringVar(&tufRoot, "tuf-root", "", "the pinned TUF root.json the mirror is verified from")
	imp.Flags().StringVar(&tufOpts.Targets, "targets", sigstoretuf.DefaultTargets, "the mirror's folder of targets")
	imp.Flags().StringVar(&tufOpts.TrustedRootTarget, "trusted-root-target", sigstoretuf.DefaultTrustedRootTarget, "the target that holds the trusted root")
	imp.Flags().StringVar(&name, "name", policies.DefaultTrustRoot, "the TrustRoot's name (what trustRootRef names)")
	imp.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	cmd.AddCommand(imp)
	return cmd
}
