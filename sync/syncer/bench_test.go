package syncer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ward.dev/ward/admission"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// BenchmarkSwap measures one sync that finds a new bundle of n static-pass
// ImagePolicies in a folder source and swaps it in: TUF refresh, bundle
// verify and unpack, compile, swap. Publishing the next version is outside
// the timer.
func BenchmarkSwap(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			repo := tuftest.NewRepo(b, tuftest.Options{Envs: []string{"prod"}})
			policiesOf := func(version int) string {
				docs := make([]string, n)
				for i := range n {
					docs[i] = strings.Replace(allowing(fmt.Sprintf("reg.example.com/v%d/team-%d/**", version, i)), "name: allow", fmt.Sprintf("name: allow-%d", i), 1)
				}
				return strings.Join(docs, "---\n")
			}
			repo.Publish(b, "prod", policiesOf(0))
			pols := &admission.Policies{}
			clock := &tuftest.Clock{T: repo.Clock.T.Add(time.Hour)}
			s, err := syncer.New([]syncer.Spec{{Name: "prod", Env: "prod", Root: repo.Root(b), Source: source.Dir{Path: repo.Dir}}}, b.TempDir(), pols, syncer.WithClock(clock.Now))
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Sync(b.Context(), "prod"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			version := 0
			for b.Loop() {
				b.StopTimer()
				version++
				repo.Publish(b, "prod", policiesOf(version))
				b.StartTimer()
				if err := s.Sync(b.Context(), "prod"); err != nil {
					b.Fatal(err)
				}
			}
			if got := pols.Load().Bundles[0].Version; got != int64(version+1) {
				b.Fatalf("serving v%d, want v%d", got, version+1)
			}
		})
	}
}
