package syncer_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// troubleProxy stands in front of a server and breaks it on demand.
type troubleProxy struct {
	mode atomic.Value // "ok", "slow", "garbage", "5xx"
	srv  *httptest.Server
}

func newTroubleProxy(t *testing.T, target string) *troubleProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &troubleProxy{}
	p.mode.Store("ok")
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load().(string) {
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		case "garbage":
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			w.Write([]byte("\x00\xffthis is not git\n"))
		case "5xx":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// The Git host down, slow or answering garbage: the last verified policy
// stays enforced, the status says what is wrong, and the loop recovers by
// itself when the host does.
func TestGitHostTroubleAndRecovery(t *testing.T) {
	g := newGitEnv(t)
	proxy := newTroubleProxy(t, g.srv.URL)
	url := strings.Replace(g.url, g.srv.URL, proxy.srv.URL, 1)
	src := &source.Git{URL: url, Path: "tuf", Auth: &githttp.BasicAuth{Username: g.srv.User, Password: g.srv.Pass}, CacheDir: filepath.Join(g.stateDir, "git-cache")}
	s := g.newSyncer(t, g.stateDir, syncer.Spec{Source: src, Interval: 200 * time.Millisecond, Timeout: time.Second})
	run(t, s)
	waitFor(t, func() bool { return g.allowed(t, "v1") })

	// Broken before v2 exists, so that no sync can take v2 first.
	proxy.mode.Store("garbage")
	g.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	g.push(t, "v2")
	breakAndRecover(t, proxy, s, g.env)
}

// The registry of an OCI source down, slow or answering garbage: the same.
func TestOCIRegistryTroubleAndRecovery(t *testing.T) {
	host := signtest.Registry(t, true)
	e := newEnv(t)
	direct := &source.OCI{URL: "oci://" + host + "/policies/tuf:prod"}
	if _, err := source.PushOCI(t.Context(), e.repo.Dir, direct); err != nil {
		t.Fatal(err)
	}
	proxy := newTroubleProxy(t, "http://"+host)
	viaProxy := &source.OCI{URL: "oci://" + strings.TrimPrefix(proxy.srv.URL, "http://") + "/policies/tuf:prod"}
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: viaProxy, Interval: 200 * time.Millisecond, Timeout: time.Second})
	run(t, s)
	waitFor(t, func() bool { return e.allowed(t, "v1") })
	proxy.mode.Store("garbage")
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	if _, err := source.PushOCI(t.Context(), e.repo.Dir, direct); err != nil {
		t.Fatal(err)
	}
	breakAndRecover(t, proxy, s, e)
}

// breakAndRecover has the proxy answer garbage, 5xx, then nothing: each
// time the sync fails as a fetch, v1 stays enforced and the source is not
// ready; when the proxy recovers, v2 is enforced.
func breakAndRecover(t *testing.T, proxy *troubleProxy, s *syncer.Syncer, e *env) {
	t.Helper()
	for _, mode := range []string{"garbage", "5xx", "slow"} {
		proxy.mode.Store(mode)
		start := status(t, s).Failures
		waitFor(t, func() bool {
			st := status(t, s)
			return st.Failures > start && st.LastReason == syncer.ReasonFetchFailed
		})
		st := status(t, s)
		if !e.allowed(t, "v1") || st.Ready || !strings.Contains(st.LastError, "failed to fetch") {
			t.Fatalf("%s: status = %+v", mode, st)
		}
		t.Logf("%s: %s", mode, st.LastError)
	}
	proxy.mode.Store("ok")
	waitFor(t, func() bool { return e.allowed(t, "v2") && status(t, s).Ready })
}
