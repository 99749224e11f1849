package syncer_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"ward.dev/ward/admission"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// countingRegistry is go-containerregistry's registry, counting requests
// and response bytes by what they are for: the TUF file a blob holds
// (from its digest), the manifest, the API check.
type countingRegistry struct {
	next http.Handler
	// headStatus, when set, answers every HEAD with it.
	headStatus atomic.Int32

	mu     sync.Mutex
	titles map[string]string // blob digest → kind of TUF file
	reqs   map[string]int
	bytes  map[string]int64
}

func (c *countingRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch p := r.URL.Path; {
	case p == "/v2/" || p == "/v2":
		kind = "API check"
	case strings.Contains(p, "/manifests/"):
		kind = "manifest"
	case strings.Contains(p, "/blobs/sha256:"):
		c.mu.Lock()
		kind = c.titles[path.Base(p)]
		c.mu.Unlock()
		if kind == "" {
			kind = "other blob"
		}
	}
	if r.Method != http.MethodGet {
		kind += " (" + r.Method + ")"
	}
	cw := &countingWriter{ResponseWriter: w}
	if code := int(c.headStatus.Load()); code != 0 && r.Method == http.MethodHead {
		cw.WriteHeader(code)
	} else {
		c.next.ServeHTTP(cw, r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs[kind]++
	c.bytes[kind] += cw.n
}

// startCountingRegistry starts a counting registry and returns it with
// the oci:// URL of a repository's artifact in it.
func startCountingRegistry(t *testing.T) (*countingRegistry, string) {
	t.Helper()
	reg := &countingRegistry{next: registry.New(registry.Logger(log.New(io.Discard, "", 0))), titles: map[string]string{}}
	reg.reset()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return reg, "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/policies/tuf:prod"
}

// learn files the repository's files by digest, as PushOCI stores them.
func (c *countingRegistry) learn(t *testing.T, dir string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		c.titles["sha256:"+hex.EncodeToString(sum[:])] = tufKind(filepath.Base(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tufKind names a TUF file by role: "timestamp.json", "snapshot" for
// 3.snapshot.json, "bundle" for a target.
func tufKind(base string) string {
	if base == "timestamp.json" {
		return base
	}
	if strings.HasSuffix(base, ".bundle.tar.gz") {
		return "bundle"
	}
	parts := strings.Split(base, ".")
	if len(parts) == 3 {
		return parts[1]
	}
	return base
}

func (c *countingRegistry) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs, c.bytes = map[string]int{}, map[string]int64{}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// TestFleet simulates a fleet of clusters following one TUF repository
// through an OCI registry: each cluster its own syncer, state folder and
// policies, all syncing from the same artifact. It counts what the
// registry serves per sync of the whole fleet when nothing changed, when
// only the timestamp was re-signed, and when a new version is published,
// and checks that only timestamp.json moves while nothing changes. 20
// clusters by default; WARD_FLEET=1000 gives docs/scale.md's figures.
func TestFleet(t *testing.T) {
	n := 20
	if v := os.Getenv("WARD_FLEET"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("WARD_FLEET=%q: want a number of clusters", v)
		}
	}
	reg, url := startCountingRegistry(t)
	e := newEnv(t)
	oci := &source.OCI{URL: url, Insecure: true}
	push := func() {
		t.Helper()
		reg.learn(t, e.repo.Dir)
		if _, err := source.PushOCI(t.Context(), e.repo.Dir, oci); err != nil {
			t.Fatal(err)
		}
	}
	push()

	type cluster struct {
		s        *syncer.Syncer
		policies *admission.Policies
	}
	fleet := make([]cluster, n)
	for i := range fleet {
		fleet[i].policies = &admission.Policies{}
		// Each cluster has its own source, and what it remembers.
		src := &source.OCI{URL: oci.URL, Insecure: true}
		s, err := syncer.New([]syncer.Spec{{Name: "prod", Env: "prod", Root: e.root, Source: src}}, t.TempDir(), fleet[i].policies, syncer.WithClock(e.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		fleet[i].s = s
	}
	type round struct {
		name     string
		reqs     map[string]int
		bytes    map[string]int64
		p50, max time.Duration
	}
	var rounds []round
	// syncAll syncs every cluster once, four at a time (an in-process
	// registry: the CPU is the limit, not the network).
	syncAll := func(name string) {
		t.Helper()
		reg.reset()
		took := make([]time.Duration, n)
		var wg sync.WaitGroup
		next := make(chan int)
		for range 4 {
			wg.Go(func() {
				for i := range next {
					start := time.Now()
					if err := fleet[i].s.Sync(t.Context(), "prod"); err != nil {
						t.Errorf("cluster %d: %v", i, err)
					}
					took[i] = time.Since(start)
				}
			})
		}
		for i := range fleet {
			next <- i
		}
		close(next)
		wg.Wait()
		slices.Sort(took)
		reg.mu.Lock()
		rounds = append(rounds, round{name: name, reqs: reg.reqs, bytes: reg.bytes, p50: took[n/2], max: took[n-1]})
		reg.mu.Unlock()
		reg.reset() // what comes next (a push) is not the fleet's
	}
	enforcing := func(path string) int {
		count := 0
		for _, c := range fleet {
			obj := fmt.Sprintf(`{"spec":{"containers":[{"name":"c","image":"reg.example.com/%s/app@sha256:%s"}]}}`, path, strings.Repeat("a", 64))
			dec, err := admission.NewDecider(nil).Decide(t.Context(), c.policies.Load(), admission.Request{Kind: "Pod", Namespace: "apps", Object: []byte(obj)})
			if err == nil && dec.Allowed {
				count++
			}
		}
		return count
	}

	syncAll("first sync")
	syncAll("nothing changed")
	if _, err := e.repo.RefreshTimestamp(e.repo.Signers); err != nil {
		t.Fatal(err)
	}
	push()
	syncAll("timestamp re-signed")
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	push()
	syncAll("new version")
	if got := enforcing("v2"); got != n {
		t.Fatalf("%d of %d clusters enforce v2", got, n)
	}
	// A repository with a history: 100 more versions, and a sync with
	// nothing new. The versions stay in the repository, not in the
	// artifact.
	for v := 3; v < 103; v++ {
		e.repo.Publish(t, "prod", allowing(fmt.Sprintf("reg.example.com/v%d/**", v)))
	}
	push()
	syncAll("100 versions later")
	syncAll("nothing changed, 102 versions")
	if got := enforcing("v102"); got != n {
		t.Fatalf("%d of %d clusters enforce v102", got, n)
	}
	if _, err := e.repo.RefreshTimestamp(e.repo.Signers); err != nil {
		t.Fatal(err)
	}
	push()
	syncAll("timestamp re-signed, 102 versions")
	// The artifact holds what a client reads today, not the history: the
	// manifest a sync reads when the timestamp moves does not grow with
	// the versions published.
	if before, after := rounds[2].bytes["manifest"], rounds[6].bytes["manifest"]; before == 0 || after > before+before/10 {
		t.Errorf("the manifest grew from %d to %d bytes a sync over 100 versions", before/int64(n), after/int64(n))
	}

	// Nothing changed: a HEAD of the tag, and nothing read.
	for _, r := range []round{rounds[1], rounds[5]} {
		for kind := range r.reqs {
			if kind != "API check" && kind != "manifest (HEAD)" {
				t.Errorf("%s: the fleet asked for %d %s", r.name, r.reqs[kind], kind)
			}
		}
		if r.reqs["manifest (HEAD)"] != n {
			t.Errorf("%s: %d HEADs for %d clusters", r.name, r.reqs["manifest (HEAD)"], n)
		}
	}
	// Only the timestamp moved: the manifest and timestamp.json.
	for _, r := range []round{rounds[2], rounds[6]} {
		for kind := range r.reqs {
			if kind != "API check" && kind != "manifest" && kind != "manifest (HEAD)" && kind != "timestamp.json" {
				t.Errorf("%s: the fleet asked for %d %s", r.name, r.reqs[kind], kind)
			}
		}
	}
	if r := rounds[3]; r.reqs["bundle"] != n {
		t.Errorf("new version: %d bundle downloads for %d clusters", r.reqs["bundle"], n)
	}
	for _, r := range rounds {
		var kinds []string
		var total int64
		calls := 0
		for k := range r.reqs {
			kinds = append(kinds, k)
			total += r.bytes[k]
			calls += r.reqs[k]
		}
		slices.Sort(kinds)
		var parts []string
		for _, k := range kinds {
			parts = append(parts, fmt.Sprintf("%s %.1f req, %d B", k, float64(r.reqs[k])/float64(n), r.bytes[k]/int64(n)))
		}
		t.Logf("%d clusters, %s: per cluster %.1f requests, %d bytes (%s); sync p50 %v, slowest %v",
			n, r.name, float64(calls)/float64(n), total/int64(n), strings.Join(parts, "; "), r.p50.Round(time.Millisecond), r.max.Round(time.Millisecond))
	}
}
