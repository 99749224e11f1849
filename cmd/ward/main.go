// Command ward is the admission controller's command line: it makes policy
// repositories, builds and signs policy bundles into TUF repositories,
// promotes and rolls them back, and verifies them as the controller does.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// exitError carries an exit code: 1 for "checked and found bad", 2 (the
// default for any other error) for bad input or a failure to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failed marks err as a negative verdict (exit 1).
func failed(err error) error { return &exitError{code: 1, err: err} }

// asError drops a verdict's exit code from err: what was a failed check
// for one command is input that cannot be checked for another (exit 2).
func asError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.err
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "ward: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ward",
		Short: "Admit only trusted, signed images, with policies that are supply-chain protected",
		Long: `ward is a Kubernetes admission controller whose policies live in Git, are
built into reproducible bundles, and are signed per environment into a TUF
repository that the controller verifies through a pinned root.

The authoring flow:
  ward init my-policies                  # policy repo, TUF repo and keys
  ward publish --env dev my-policies     # build and sign a bundle for dev
  ward promote --from dev --to staging my-policies
  ward verify --env staging my-policies  # verify as the controller does`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(
		newInitCommand(),
		newKeysCommand(),
		newBundleCommand(),
		newPublishCommand(),
		newPromoteCommand(),
		newRollbackCommand(),
		newHistoryCommand(),
		newTimestampCommand(),
		newRootRotateCommand(),
		newVerifyCommand(),
		newCheckCommand(),
		newTestCommand(),
		newServeCommand(),
		newStatusCommand(),
		newDemoCommand(),
		newTUFCommand(),
		newTrustRootCommand(),
		newConvertCommand(),
		newVersionCommand(),
	)
	return root
}
