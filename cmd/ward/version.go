package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func versionString() string {
	c := commit
	if c == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("ward %s (commit %s, %s %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCommand() *cobra.Command {
	var o outputOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print ward's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := commit
			if c == "" {
				c = "unknown"
			}
			return o.print(cmd, map[string]string{"version": version, "commit": c, "go": runtime.Version()}, func(p printer) {
				p.line(versionString())
			})
		},
	}
	o.bind(cmd)
	return cmd
}
