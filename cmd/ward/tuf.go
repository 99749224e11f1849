package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle/tufclient"
)

func newTUFCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tuf", Short: "TUF tools"}
	cmd.AddCommand(newTUFClientCommand())
	return cmd
}

type tufClientOptions struct {
	metadataDir   string
	metadataURL   string
	referenceTime string
}

// newTUFClientCommand speaks the tuf-conformance client protocol over
// ward's own client code:
//
//	client --metadata-dir DIR init TRUSTED_ROOT
//	client --metadata-dir DIR --metadata-url URL refresh
//	client --metadata-dir DIR --metadata-url URL --target-name P ... --target-base-url URL --target-dir DIR download
func newTUFClientCommand() *cobra.Command {
	o := &tufClientOptions{}
	cmd := &cobra.Command{
		Use:   "client",
		Short: "A TUF client speaking the tuf-conformance protocol, on ward's client code",
		Long: `A generic TUF client for the tuf-conformance test suite, built on the same
client code the controller uses. Exit 0 on success, 1 on failure.

Expiry is judged at --reference-time (default: now). The suite fakes the
clock with libfaketime, which a static Go binary never sees; its entry
point hack/tuf-conformance-client.sh passes the time that date(1), faked,
reads.`,
		Example: `  ward tuf client --metadata-dir meta init root.json
  ward tuf client --metadata-dir meta --metadata-url http://127.0.0.1:8000/metadata refresh
  ward tuf client --metadata-dir meta --metadata-url http://127.0.0.1:8000/metadata \
    --target-name dev/bundle.tar.gz --target-base-url http://127.0.0.1:8000/targets --target-dir out download`,
	}
	cmd.PersistentFlags().StringVar(&o.metadataDir, "metadata-dir", "", "folder of trusted metadata (required)")
	cmd.PersistentFlags().StringVar(&o.metadataURL, "metadata-url", "", "base URL of the repository's metadata")
	cmd.PersistentFlags().StringVar(&o.referenceTime, "reference-time", "", "judge expiry at this time: Unix seconds or RFC 3339 (default: now)")

	initCmd := &cobra.Command{
		Use:   "init TRUSTED_ROOT",
		Short: "Trust a root: copy it into the metadata folder",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.metadataDir == "" {
				return errors.New("--metadata-dir is required")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return failed(err)
			}
			if err := os.MkdirAll(o.metadataDir, 0o700); err != nil {
				return failed(err)
			}
			if _, err := tufclient.CheckRoot(data); err != nil {
				return failed(err)
			}
			if err := os.WriteFile(filepath.Join(o.metadataDir, "root.json"), data, 0o600); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	refresh := &cobra.Command{
		Use:   "refresh",
		Short: "Update the top-level metadata",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cleanup, err := o.trusted("")
			if err != nil {
				return failed(err)
			}
			defer cleanup()
			if err := c.Refresh(cmd.Context()); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	var names []string
	var baseURL, targetDir string
	download := &cobra.Command{
		Use:   "download",
		Short: "Refresh, then download and verify each target into --target-dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if targetDir == "" || baseURL == "" {
				return errors.New("--target-dir and --target-base-url are required")
			}
			c, cleanup, err := o.trusted(baseURL)
			if err != nil {
				return failed(err)
			}
			defer cleanup()
			if err := os.MkdirAll(targetDir, 0o755); err != nil {
				return failed(err)
			}
			if err := c.Download(cmd.Context(), targetDir, names...); err != nil {
				return failed(err)
			}
			return nil
		},
	}
	download.Flags().StringArrayVar(&names, "target-name", nil, "target path (repeatable)")
	download.Flags().StringVar(&baseURL, "target-base-url", "", "base URL of the targets")
	download.Flags().StringVar(&targetDir, "target-dir", "", "folder to download targets into")
	cmd.AddCommand(initCmd, refresh, download)
	return cmd
}

func (o *tufClientOptions) trusted(targetsURL string) (*tufclient.Client, func(), error) {
	if o.metadataDir == "" || o.metadataURL == "" {
		return nil, nil, errors.New("--metadata-dir and --metadata-url are required")
	}
	root, err := os.ReadFile(filepath.Join(o.metadataDir, "root.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("no trusted root (run init first): %w", err)
	}
	return o.client(root, targetsURL)
}

// client makes a client whose trusted metadata lives in --metadata-dir; its
// other state goes to a temporary folder that cleanup removes.
func (o *tufClientOptions) client(root []byte, targetsURL string) (*tufclient.Client, func(), error) {
	state, err := os.MkdirTemp("", "ward-tuf-client-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(state) }
	opts := []tufclient.Option{tufclient.WithDirs(o.metadataDir, filepath.Join(state, "targets"))}
	if o.referenceTime != "" {
		at, err := parseReferenceTime(o.referenceTime)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		opts = append(opts, tufclient.WithClock(func() time.Time { return at }))
	}
	f := tufclient.HTTPFetcher{MetadataURL: o.metadataURL, TargetsURL: targetsURL}
	c, err := tufclient.New(root, f, state, opts...)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return c, cleanup, nil
}

// parseReferenceTime reads Unix seconds or an RFC 3339 time.
func parseReferenceTime(v string) (time.Time, error) {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--reference-time %q: want Unix seconds or an RFC 3339 time", v)
	}
	return at, nil
}
