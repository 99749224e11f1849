package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// outputOptions is the -o flag of commands whose output is data.
type outputOptions struct{ format string }

func (o *outputOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text or json")
}

type printer struct{ w io.Writer }

func (p printer) line(format string, args ...any) { fmt.Fprintf(p.w, format+"\n", args...) }

// print writes v as JSON with -o json, else calls text.
func (o *outputOptions) print(cmd *cobra.Command, v any, text func(printer)) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		text(printer{cmd.OutOrStdout()})
		return nil
	}
	return fmt.Errorf("unknown output format %q (use text or json)", o.format)
}

// progress writes a step of long work to stderr, so stdout stays data.
func progress(cmd *cobra.Command, format string, args ...any) {
	fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
}
