package policies

import (
	"fmt"
	"testing"

	"ward.dev/ward/bundle"
)

// BenchmarkMatchImage finds the policies of an image among n policies,
// half with literal team prefixes and half with a wildcard segment, the
// shapes real bundles have: all ImagePolicies, or every other one a
// ClusterImagePolicy with policy-controller's globs (mixed).
func BenchmarkMatchImage(b *testing.B) {
	key := testKeyPEM(b)
	for _, kinds := range []string{"imagepolicy", "mixed"} {
		for _, n := range []int{10, 1000, 10000} {
			benchmarkMatchImage(b, key, kinds, n)
		}
	}
}

func benchmarkMatchImage(b *testing.B, key, kinds string, n int) {
	{
		docs := make([]bundle.Document, n)
		for i := range n {
			glob := fmt.Sprintf("registry.example.com/team-%d/**", i)
			if i%2 == 1 {
				glob = fmt.Sprintf("registry.example.com/team-%d/app-*", i)
			}
			doc := imagePolicy(fmt.Sprintf("p%d", i), glob, key)
			if kinds == "mixed" && i%4 >= 2 {
				doc = fmt.Sprintf("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: p%d}\nspec:\n  images: [{glob: %q}]\n  authorities: [{static: {action: pass}}]\n", i, glob)
			}
			docs[i] = bundle.Document{Path: fmt.Sprintf("policies/p%d.yaml", i), Data: []byte(doc)}
		}
		set, err := Compile(docs)
		if err != nil {
			b.Fatal(err)
		}
		img, err := ParseImage(fmt.Sprintf("registry.example.com/team-%d/app-x@sha256:%064d", n/2+1, 0))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/policies=%d", kinds, n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(set.MatchImage(img, Subject{Namespace: "default", Kind: "Pod"})) != 1 {
					b.Fatal("no match")
				}
			}
		})
	}
}
