package policies

import (
	"fmt"
	"testing"

	"ward.dev/ward/bundle"
)

// BenchmarkMatchImage finds the policies of an image among n ImagePolicies,
// half with literal team prefixes and half with a wildcard segment, the
// shapes real bundles have.
func BenchmarkMatchImage(b *testing.B) {
	key := testKeyPEM(b)
	for _, n := range []int{10, 1000, 10000} {
		docs := make([]bundle.Document, n)
		for i := range n {
			glob := fmt.Sprintf("registry.example.com/team-%d/**", i)
			if i%2 == 1 {
				glob = fmt.Sprintf("registry.example.com/team-%d/app-*", i)
			}
			docs[i] = bundle.Document{Path: fmt.Sprintf("policies/p%d.yaml", i), Data: []byte(imagePolicy(fmt.Sprintf("p%d", i), glob, key))}
		}
		set, err := Compile(docs)
		if err != nil {
			b.Fatal(err)
		}
		img, err := ParseImage(fmt.Sprintf("registry.example.com/team-%d/app-x@sha256:%064d", n/2+1, 0))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(set.MatchImage(img, Subject{Namespace: "default", Kind: "Pod"})) != 1 {
					b.Fatal("no match")
				}
			}
		})
	}
}
