package bundle_test

import (
	"fmt"
	"testing"
	"time"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tufclient"
	"ward.dev/ward/internal/tuftest"
)

// BenchmarkVerifyAndOpen measures what the controller does per sync with
// an empty state: TUF verification from the pinned root to the bundle
// (metadata signatures, download, hash) and the hostile-input read of the
// bundle, for bundles of 10, 1,000 and 10,000 policies.
func BenchmarkVerifyAndOpen(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			files := make(map[string]string, n)
			for i := range n {
				files[fmt.Sprintf("team-%03d/policy-%05d.yaml", i%100, i)] = fmt.Sprintf(policyTemplate, i, i%100)
			}
			repo := tuftest.NewRepo(b, tuftest.Options{Envs: []string{"dev"}})
			data := tuftest.Bundle(b, files)
			if _, err := repo.Repo.Publish("dev", data, repo.Signers); err != nil {
				b.Fatal(err)
			}
			root := repo.Root(b)
			now := func() time.Time { return repo.Clock.Now().Add(time.Minute) }
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				state := b.TempDir()
				b.StartTimer()
				c, err := tufclient.New(root, tufclient.DirFetcher{Dir: repo.Dir}, state, tufclient.WithClock(now))
				if err != nil {
					b.Fatal(err)
				}
				target, err := c.Update(b.Context(), "dev")
				if err != nil {
					b.Fatal(err)
				}
				v, err := bundle.Open(target)
				if err != nil {
					b.Fatal(err)
				}
				if len(v.Policies()) != n {
					b.Fatalf("%d policies", len(v.Policies()))
				}
			}
		})
	}
}

const policyTemplate = `apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata:
  name: policy-%05d
spec:
  mode: enforce
  images:
    - glob: "registry.example.com/team-%03d/**"
  authorities:
    - name: team-key
      key:
        data: |
          -----BEGIN PUBLIC KEY-----
          MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7nN4xVYVqVmJcLrTs5W3tJ0fWq3w
          t8a7yqK3YdJxJmQ0m5sO1aW8b0b0yE6l8Q0N4s2H4QnTqD3e9w5Gm0K3Fw==
          -----END PUBLIC KEY-----
`
