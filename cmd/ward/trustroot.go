package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"ward.dev/ward/policies"
)

func newTrustRootCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "trustroot", Short: "Sigstore trust roots for keyless policies"}
	var from, name, out string
	imp := &cobra.Command{
		Use:   "import --trusted-root FILE [-o FILE] [--name NAME]",
		Short: "Write a Sigstore trusted_root.json as a TrustRoot document for the policy folder",
		Long: `Write Sigstore trust material — a trusted_root.json as Sigstore's TUF
repository serves it (cosign and sigstore-go read the same file) — as a
policy-controller TrustRoot document (sigstoreKeys): the Fulcio certificate
chains, the Rekor and certificate transparency log keys, the timestamp
authorities. Commit it to the policy folder: it then changes only by pull
request and is protected by the bundle's own TUF chain; the controller never
fetches Sigstore's trust material at admission time.

Keyless authorities of ClusterImagePolicies refer to it by trustRootRef; one
with neither ca-cert nor trustRootRef (Sigstore's public-good instance, as
policy-controller trusts it by default) uses the TrustRoot named
` + policies.DefaultTrustRoot + `, the default --name.`,
		Example: `  # the trusted root cosign keeps after "cosign initialize":
  ward trustroot import --trusted-root ~/.sigstore/root/tuf-repo-cdn.sigstore.dev/targets/trusted_root.json \
    -o policies/` + policies.DefaultTrustRoot + `.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--trusted-root is required")
			}
			tr, err := root.NewTrustedRootFromPath(from)
			if err != nil {
				return fmt.Errorf("failed to read the trusted root %s: %w", from, err)
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
	imp.Flags().StringVar(&name, "name", policies.DefaultTrustRoot, "the TrustRoot's name (what trustRootRef names)")
	imp.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	cmd.AddCommand(imp)
	return cmd
}
