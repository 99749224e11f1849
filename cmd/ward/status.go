package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/internal/server"
)

func newStatusCommand() *cobra.Command {
	var (
		url string
		o   outputOptions
	)
	cmd := &cobra.Command{
		Use:   "status [--server URL]",
		Short: "Show the bundle each policy source enforces, and the last error",
		Long: `Ask a running ward serve (its health address) which bundle each policy
source enforces: environment, version, digest, commit, whether it is ready,
its state (pending, enforcing, "enforcing, expired", deny-all) and why
the last sync was refused, if it was. Exit 0 when every source is ready
(enforcing an unexpired bundle, last sync succeeded), 1 when any is not,
2 if the server cannot be asked.`,
		Example: "  ward status\n  ward status --server http://ward.example.internal:8080 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get(strings.TrimSuffix(url, "/") + server.PathStatus)
			if err != nil {
				return fmt.Errorf("failed to ask %s: %w", url, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			if err != nil {
				return fmt.Errorf("failed to read the status from %s: %w", url, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", url, resp.Status)
			}
			var rep server.StatusReport
			if err := json.Unmarshal(body, &rep); err != nil {
				return fmt.Errorf("%s did not answer with a ward status: %w", url, err)
			}
			err = o.print(cmd, rep, func(p printer) {
				for _, s := range rep.Sources {
					ready := "ready"
					if !s.Ready {
						ready = "NOT READY"
					}
					p.line("%s (%s, env %s): %s, %s", s.Name, s.Source, s.Env, s.State, ready)
					p.line("  %s", s.Message)
					if a := s.Applied; a != nil {
						p.line("  bundle v%d %s, commit %s, %d policies, applied %s, verified %s", a.Version, a.Digest, orNone(a.Commit), a.Policies,
							a.AppliedAt.Format(time.RFC3339), a.VerifiedAt.Format(time.RFC3339))
						if !a.TrustUntil.IsZero() {
							p.line("  its metadata expires %s", a.TrustUntil.Format(time.RFC3339))
						}
					}
					if s.Stalled != "" {
						p.line("  the newest spec (generation %d) cannot be used: %s", s.Generation, s.Stalled)
					}
					if s.Reconciling {
						p.line("  reconciling generation %d", s.Generation)
					}
					if s.LastError != "" {
						p.line("  last sync %s failed (%s): %s", s.LastAttempt.Format(time.RFC3339), s.LastReason, s.LastError)
					}
				}
			})
			if err != nil {
				return err
			}
			if !rep.Ready {
				var not []string
				for _, s := range rep.Sources {
					if !s.Ready {
						not = append(not, s.Name+" ("+s.State+")")
					}
				}
				if len(not) == 0 {
					return failed(errors.New("no policy source"))
				}
				return failed(fmt.Errorf("not ready: %s", strings.Join(not, ", ")))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "server", "http://127.0.0.1:8080", "health address of ward serve")
	o.bind(cmd)
	return cmd
}
