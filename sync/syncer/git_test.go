package syncer_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/internal/gittest"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// gitEnv is a TUF repository published into a branch of a real Git server.
type gitEnv struct {
	*env
	oldTimestamp []byte
	srv          *gittest.Server
	url          string
	work         string // a working clone that pushes the tuf/ folder
}

func newGitEnv(t *testing.T) *gitEnv { return newGitEnvWith(t, tuftest.Options{}) }

func newGitEnvWith(t *testing.T, o tuftest.Options) *gitEnv {
	e := newEnvWith(t, o)
	srv := gittest.Start(t)
	url := srv.NewRepo(t, "policies.git")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Run(t, "", "git", "clone", "-q", srv.AuthURL(url), work)
	g := &gitEnv{env: e, srv: srv, url: url, work: work}
	g.push(t, "v1")
	return g
}

// push copies the TUF repository into tuf/ and pushes it to main.
func (g *gitEnv) push(t *testing.T, msg string) {
	t.Helper()
	os.RemoveAll(filepath.Join(g.work, "tuf"))
	if out, err := exec.Command("cp", "-r", g.repo.Dir, filepath.Join(g.work, "tuf")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	gittest.Run(t, g.work, "git", "add", "-A")
	gittest.Run(t, g.work, "git", "commit", "-q", "--allow-empty", "-m", msg)
	gittest.Run(t, g.work, "git", "push", "-q", "origin", "HEAD:main")
}

func (g *gitEnv) syncer(t *testing.T, pass string) *syncer.Syncer {
	t.Helper()
	src := &source.Git{URL: g.url, Path: "tuf", Auth: &githttp.BasicAuth{Username: g.srv.User, Password: pass}, CacheDir: filepath.Join(g.stateDir, "git-cache")}
	return g.newSyncer(t, g.stateDir, syncer.Spec{Source: src})
}

func TestGitSource(t *testing.T) {
	g := newGitEnv(t)
	s := g.syncer(t, g.srv.Pass)
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !g.allowed(t, "v1") {
		t.Fatal("v1 not enforced")
	}
	rev := status(t, s).Applied.Revision
	if !strings.HasPrefix(rev, "main@sha1:") {
		t.Errorf("revision = %q", rev)
	}

	// A policy change published and pushed is enforced at the next sync.
	g.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	g.push(t, "v2")
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !g.allowed(t, "v2") || g.allowed(t, "v1") || status(t, s).Applied.Revision == rev {
		t.Fatalf("v2 not enforced: %+v", status(t, s))
	}

	// An attacker with push access replays the old timestamp: refused
	// through the live source, v2 stays.
	old := g.repo.Read(t, "metadata/timestamp.json")
	g.repo.RefreshTimestamp(g.repo.Signers)
	g.push(t, "refresh")
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	g.repo.Write(t, "metadata/timestamp.json", old)
	g.push(t, "replay")
	err := s.Sync(t.Context(), "prod")
	var se *syncer.Error
	if !errors.As(err, &se) || se.Reason != syncer.ReasonVerificationFailed || !g.allowed(t, "v2") {
		t.Fatalf("replay: err = %v, v2 enforced = %t", err, g.allowed(t, "v2"))
	}

	// The Git host goes down: the last verified policy stays, the status
	// says why.
	g.srv.Close()
	err = s.Sync(t.Context(), "prod")
	if !errors.As(err, &se) || se.Reason != syncer.ReasonFetchFailed || !g.allowed(t, "v2") {
		t.Fatalf("down: err = %v", err)
	}
	if st := status(t, s); st.Ready || !strings.Contains(st.LastError, "failed to fetch") {
		t.Fatalf("status = %+v", st)
	}
}

func TestGitSourceWrongPassword(t *testing.T) {
	g := newGitEnv(t)
	err := g.syncer(t, "wrong").Sync(t.Context(), "prod")
	var se *syncer.Error
	if !errors.As(err, &se) || se.Reason != syncer.ReasonFetchFailed || !strings.Contains(err.Error(), "authentication required") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the password is in the error: %v", err)
	}
	if g.allowed(t, "v1") {
		t.Fatal("allowed without a verified bundle")
	}
}

// A commit published to the Git branch is enforced within one interval
// (plus jitter) without a trigger, and at once with one.
func TestGitSourceIntervalAndTrigger(t *testing.T) {
	g := newGitEnv(t)
	src := &source.Git{URL: g.url, Path: "tuf", Auth: &githttp.BasicAuth{Username: g.srv.User, Password: g.srv.Pass}, CacheDir: filepath.Join(g.stateDir, "git-cache")}
	spec := syncer.Spec{Name: "prod", Env: "prod", Root: g.root, Source: src, Interval: 300 * time.Millisecond}
	s, err := syncer.New([]syncer.Spec{spec}, g.stateDir, g.policies, syncer.WithClock(g.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	waitFor(t, func() bool { return g.allowed(t, "v1") })

	g.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	g.push(t, "v2")
	waitFor(t, func() bool { return g.allowed(t, "v2") }) // by the interval alone

	spec.Interval = time.Hour
	if err := s.Upsert(spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return status(t, s).Syncs >= 1 && g.allowed(t, "v2") })
	g.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
	g.push(t, "v3")
	s.Trigger("prod") // an hour-long interval: only the push trigger can sync now
	waitFor(t, func() bool { return g.allowed(t, "v3") })
}

// The foundation's attacks, made by someone who can push to the Git branch
// (and, where it says so, holds an online or environment key): each is
// refused through the live source, the last verified policy stays
// enforced, and the status names the refusal.
func TestGitSourceAttacks(t *testing.T) {
	tests := []struct {
		name   string
		opts   tuftest.Options
		attack func(t *testing.T, g *gitEnv)
	}{
		{"timestamp rollback", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			g.repo.Write(t, tuflayout.TimestampMetadata, g.oldTimestamp)
		}},
		{"environment role rollback with the online keys", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			tuftest.ForgeSnapshot(t, g.repo, func(s *metadata.SnapshotType) { s.Meta["prod.json"].Version-- })
		}},
		{"mix and match", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			g.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
			v := g.repo.Versions(t)["prod"]
			g.repo.Write(t, tuflayout.VersionedMetadata("prod", v), g.repo.Read(t, tuflayout.VersionedMetadata("prod", v-1)))
		}},
		{"tampered bundle", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			rel := g.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
			name := tuflayout.TargetFile("prod", strings.TrimPrefix(rel.Digest, "sha256:"))
			data := g.repo.Read(t, name)
			data[len(data)/2] ^= 0xff
			g.repo.Write(t, name, data)
		}},
		{"endless timestamp", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			g.repo.Write(t, tuflayout.TimestampMetadata, make([]byte, 1<<20))
		}},
		{"bundle version rollback with the environment key", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			v := g.repo.Versions(t)["prod"]
			next := tuflayout.VersionedMetadata("prod", v+1)
			g.repo.Write(t, next, g.repo.Read(t, tuflayout.VersionedMetadata("prod", v-1))) // lists bundle v1
			tuftest.Resign(t, g.repo, next, next, metadata.Targets(), func(tt *metadata.TargetsType) { tt.Version = v + 1 }, g.repo.Signers["prod"]...)
			tuftest.ForgeSnapshot(t, g.repo, func(s *metadata.SnapshotType) { s.Meta["prod.json"].Version = v + 1 })
		}},
		{"endless bundle", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			rel := g.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
			name := tuflayout.TargetFile("prod", strings.TrimPrefix(rel.Digest, "sha256:"))
			g.repo.Write(t, name, append(g.repo.Read(t, name), make([]byte, 1<<20)...))
		}},
		{"another environment's key signs prod's role", tuftest.Options{Envs: []string{"dev", "prod"}}, func(t *testing.T, g *gitEnv) {
			evil := g.repo.Publish(t, "dev", allowing("reg.example.com/v3/**"))
			tuftest.SignAsOtherEnv(t, g.repo, "dev", "prod", evil.Digest, 3)
		}},
		{"root rotation without the old threshold", tuftest.Options{Envs: []string{"prod"}, Keys: map[string]int{"root": 3}, Thresholds: map[string]int{"root": 2}}, func(t *testing.T, g *gitEnv) {
			tuftest.ForgeRoot(t, g.repo)
		}},
		{"one key counted twice under two key IDs", tuftest.Options{}, func(t *testing.T, g *gitEnv) {
			tuftest.CountOneKeyTwice(t, g.repo, "prod")
		}},
		{"signatures below the threshold", tuftest.Options{Envs: []string{"prod"}, Keys: map[string]int{"prod": 2}, Thresholds: map[string]int{"prod": 2}}, func(t *testing.T, g *gitEnv) {
			g.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
			tuftest.KeepOneSignature(t, g.repo, "prod")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGitEnvWith(t, tc.opts)
			s := g.syncer(t, g.srv.Pass)
			if err := s.Sync(t.Context(), "prod"); err != nil {
				t.Fatal(err)
			}
			g.oldTimestamp = g.repo.Read(t, tuflayout.TimestampMetadata)
			g.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
			g.push(t, "v2")
			if err := s.Sync(t.Context(), "prod"); err != nil || !g.allowed(t, "v2") {
				t.Fatalf("v2: %v", err)
			}
			tc.attack(t, g)
			g.push(t, "attack")
			err := s.Sync(t.Context(), "prod")
			var se *syncer.Error
			if !errors.As(err, &se) || se.Reason != syncer.ReasonVerificationFailed {
				t.Fatalf("err = %v, want a verification refusal", err)
			}
			st := status(t, s)
			if !g.allowed(t, "v2") || g.allowed(t, "v3") || st.Ready || st.Applied.Version != 2 || st.LastError == "" {
				t.Fatalf("after the attack: status = %+v", st)
			}
			t.Logf("refused: %s", st.LastError)
		})
	}
}

// Git over ssh (Debian's sshd on a loopback port): a key, and the host key
// checked against known_hosts.
func TestGitSourceSSH(t *testing.T) {
	e := newEnv(t)
	sshd := gittest.StartSSH(t)
	url := sshd.NewRepo(t, "policies.git")
	auth, err := source.GitAuth(url, map[string][]byte{"identity": sshd.ClientKey, "known_hosts": sshd.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := source.PushGit(t.Context(), e.repo.Dir, &source.Git{URL: url, Path: "tuf", Auth: auth}, "v1"); err != nil {
		t.Fatal(err)
	}
	spec := syncer.Spec{Name: "prod", Env: "prod", Root: e.root, Source: &source.Git{URL: url, Path: "tuf", Auth: auth, CacheDir: filepath.Join(t.TempDir(), "git")}}
	s, err := syncer.New([]syncer.Spec{spec}, e.stateDir, e.policies, syncer.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "v1") {
		t.Fatal("v1 not enforced")
	}

	// A server whose host key is not the one known is refused.
	other := gittest.StartSSH(t)
	wrongHosts := strings.Replace(string(other.KnownHosts), strings.Fields(string(other.KnownHosts))[0], strings.Fields(string(sshd.KnownHosts))[0], 1)
	bad, err := source.GitAuth(url, map[string][]byte{"identity": sshd.ClientKey, "known_hosts": []byte(wrongHosts)})
	if err != nil {
		t.Fatal(err)
	}
	spec.Source = &source.Git{URL: url, Path: "tuf", Auth: bad, CacheDir: filepath.Join(t.TempDir(), "git")}
	s2, _ := syncer.New([]syncer.Spec{spec}, t.TempDir(), e.policies, syncer.WithClock(e.clock.Now))
	err = s2.Sync(t.Context(), "prod")
	if err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Fatalf("wrong host key: err = %v", err)
	}
	if _, err := source.GitAuth(url, map[string][]byte{"identity": sshd.ClientKey}); err == nil {
		t.Fatal("ssh credentials without known_hosts were accepted")
	}
}

// A tag, or a pinned commit, instead of a branch.
func TestGitSourceTagAndCommit(t *testing.T) {
	g := newGitEnv(t)
	gittest.Run(t, g.work, "git", "tag", "policies-v1")
	gittest.Run(t, g.work, "git", "push", "-q", "origin", "policies-v1")
	commitV1 := strings.TrimSpace(gittest.Run(t, g.work, "git", "rev-parse", "HEAD"))
	g.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	g.push(t, "v2")
	auth := &githttp.BasicAuth{Username: g.srv.User, Password: g.srv.Pass}
	for _, src := range []*source.Git{
		{URL: g.url, Tag: "policies-v1", Path: "tuf", Auth: auth},
		{URL: g.url, Commit: commitV1, Path: "tuf", Auth: auth},
	} {
		src.CacheDir = filepath.Join(t.TempDir(), "git")
		e := newEnv(t)
		e.root, e.repo = g.root, g.repo
		s, err := syncer.New([]syncer.Spec{{Name: "prod", Env: "prod", Root: g.root, Source: src}}, t.TempDir(), e.policies, syncer.WithClock(g.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(t.Context(), "prod"); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !e.allowed(t, "v1") || e.allowed(t, "v2") {
			t.Fatalf("%s does not enforce v1", src)
		}
	}
}

// Git over https from a private CA with a bearer token (Flux's
// GitRepository secret keys bearerToken and ca.crt), read through the
// same config path a PolicySource takes.
func TestGitSourceHTTPSBearerAndCA(t *testing.T) {
	g := newGitEnv(t)
	ts := g.srv.StartTLS(t)
	url := ts.URL + "/policies.git"
	sourceWith := func(data map[string][]byte) *source.Git {
		t.Helper()
		auth, err := source.GitAuth(url, data)
		if err != nil {
			t.Fatal(err)
		}
		return &source.Git{URL: url, Path: "tuf", Auth: auth, CABundle: data["ca.crt"], CacheDir: filepath.Join(t.TempDir(), "git-cache")}
	}
	for _, tc := range []struct {
		name string
		data map[string][]byte
		want string // "" for success
	}{
		{"token and CA", map[string][]byte{"bearerToken": []byte(ts.Token), "ca.crt": ts.CAPEM}, ""},
		{"no CA", map[string][]byte{"bearerToken": []byte(ts.Token)}, "certificate signed by unknown authority"},
		{"wrong token", map[string][]byte{"bearerToken": []byte("nope"), "ca.crt": ts.CAPEM}, "authentication required"},
		{"CA only", map[string][]byte{"ca.crt": ts.CAPEM}, "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := g.newSyncer(t, t.TempDir(), syncer.Spec{Source: sourceWith(tc.data)})
			err := s.Sync(t.Context(), "prod")
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			case strings.Contains(fmt.Sprint(err), ts.Token):
				t.Fatalf("the token is in the error: %v", err)
			}
		})
	}
}
