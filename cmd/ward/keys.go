package main

import (
	"os"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle/keys"
)

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage signing keys"}
	gen := &cobra.Command{
		Use:   "generate PATH",
		Short: "Generate an ECDSA P-256 key pair: PATH and PATH's .pub",
		Long: `Generate an ECDSA P-256 key pair. The private key goes to PATH (mode 0600),
the public key beside it with the extension .pub. With WARD_KEY_PASSWORD set
the private key is encrypted in cosign's format. Existing files are never
overwritten. Print the TUF key ID.`,
		Example: "  ward keys generate keys/prod-2.key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keys.Generate(args[0], []byte(os.Getenv("WARD_KEY_PASSWORD")))
			if err != nil {
				return err
			}
			s, err := keys.Load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, id, err := keys.TUFKey(s)
			if err != nil {
				return err
			}
			p := printer{cmd.OutOrStdout()}
			p.line("private key: %s", args[0])
			p.line("public key:  %s", pub)
			p.line("key ID:      %s", id)
			return nil
		},
	}
	cmd.AddCommand(gen)
	return cmd
}
