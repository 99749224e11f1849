package policies

import (
	"fmt"
	"runtime"
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

// BenchmarkCompile compiles n ImagePolicies (a literal glob and a key
// each), the work of every swap and every start, and reports the live heap
// each compiled policy keeps (live-B/policy, after a GC).
func BenchmarkCompile(b *testing.B) {
	key := testKeyPEM(b)
	for _, n := range []int{10, 1000, 10000} {
		docs := make([]bundle.Document, n)
		for i := range n {
			docs[i] = bundle.Document{Path: fmt.Sprintf("policies/p%d.yaml", i),
				Data: []byte(imagePolicy(fmt.Sprintf("p%d", i), fmt.Sprintf("registry.example.com/team-%d/**", i), key))}
		}
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var set *Set
			for b.Loop() {
				var err error
				if set, err = Compile(docs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			before := liveHeap()
			set, _ = Compile(docs)
			after := liveHeap()
			runtime.KeepAlive(set)
			b.ReportMetric(float64(after-before)/float64(n), "live-B/policy")
		})
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkCompileNextVersion compiles a new version of a bundle of n
// ImagePolicies in which one document changed, with the ParseCache of the
// last compile: the common swap.
func BenchmarkCompileNextVersion(b *testing.B) {
	key := testKeyPEM(b)
	for _, n := range []int{1000, 10000} {
		docs := make([]bundle.Document, n)
		for i := range n {
			docs[i] = bundle.Document{Path: fmt.Sprintf("policies/p%d.yaml", i),
				Data: []byte(imagePolicy(fmt.Sprintf("p%d", i), fmt.Sprintf("registry.example.com/team-%d/**", i), key))}
		}
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			var cache ParseCache
			if _, err := Compile(docs, WithParseCache(&cache)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			v := 0
			for b.Loop() {
				v++
				docs[0].Data = []byte(imagePolicy("p0", fmt.Sprintf("registry.example.com/v%d/**", v), key))
				if _, err := Compile(docs, WithParseCache(&cache)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
