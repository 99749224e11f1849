package syncer_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/internal/registrytest"
	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// TestOCISource stores the TUF repository as an OCI artifact in a real
// registry (Debian's docker-registry, TLS and htpasswd) and syncs from it.
func TestOCISource(t *testing.T) {
	reg := registrytest.Start(t)
	caPEM, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"username": reg.Username, "password": reg.Password}}})
	oci := &source.OCI{URL: "oci://" + reg.Host + "/policies/tuf:prod", DockerConfig: cfg, CAPEM: caPEM}
	e := newEnv(t)
	push := func() string {
		t.Helper()
		d, err := source.PushOCI(t.Context(), e.repo.Dir, oci)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := push()
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: oci})
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "v1") || status(t, s).Applied.Revision != d1 {
		t.Fatalf("v1 not enforced: %+v", status(t, s))
	}
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	push()
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "v2") {
		t.Fatal("v2 not enforced")
	}

	// Someone with push access swaps in a tampered bundle: refused.
	e.repo.Publish(t, "prod", allowing("reg.example.com/v3/**"))
	matches := globTargets(t, e)
	for _, m := range matches {
		os.WriteFile(m, []byte("tampered"), 0o644)
	}
	push()
	err = s.Sync(t.Context(), "prod")
	var se *syncer.Error
	if !errors.As(err, &se) || se.Reason != syncer.ReasonVerificationFailed || !e.allowed(t, "v2") || e.allowed(t, "v3") {
		t.Fatalf("tampered: err = %v", err)
	}

	// Without credentials the registry refuses: the last policy stays.
	anon := &source.OCI{URL: oci.URL, CAPEM: caPEM}
	s2 := e.newSyncer(t, t.TempDir(), syncer.Spec{Source: anon})
	if err := s2.Sync(t.Context(), "prod"); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous: err = %v", err)
	}
}

func globTargets(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir(e.repo.Path("targets/prod"))
	for _, en := range entries {
		out = append(out, e.repo.Path("targets/prod/"+en.Name()))
	}
	return out
}

// With a verify key, the artifact itself must carry a cosign signature by
// it before anything is read from it.
func TestOCISourceArtifactSignature(t *testing.T) {
	host := signtest.Registry(t, true)
	key := signtest.NewKey(t)
	oci := &source.OCI{URL: "oci://" + host + "/policies/tuf:prod", VerifyKey: key.Public}
	e := newEnv(t)
	push := func() name.Digest {
		t.Helper()
		d, err := source.PushOCI(t.Context(), e.repo.Dir, oci)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.NewDigest(host + "/policies/tuf@" + d)
		return ref
	}
	signtest.SignBundle(t, push(), key) // cosign v3's format
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: oci})
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if !e.allowed(t, "v1") {
		t.Fatal("v1 not enforced")
	}
	e.repo.Publish(t, "prod", allowing("reg.example.com/v2/**"))
	unsigned := push()
	if err := s.Sync(t.Context(), "prod"); err == nil || !strings.Contains(err.Error(), "not signed by the key") {
		t.Fatalf("unsigned artifact: err = %v", err)
	}
	signtest.SignLegacy(t, unsigned, signtest.NewKey(t)) // someone else's key
	if err := s.Sync(t.Context(), "prod"); err == nil || !e.allowed(t, "v1") || e.allowed(t, "v2") {
		t.Fatalf("artifact signed by another key: err = %v", err)
	}
	signtest.SignLegacy(t, unsigned, key)
	if err := s.Sync(t.Context(), "prod"); err != nil || !e.allowed(t, "v2") {
		t.Fatalf("signed v2: err = %v", err)
	}
}

// The artifact holds only what clients read today: a promoted bundle (the
// same bytes another environment lists) and a rollback (a new version
// listing an old bundle) still sync from it.
func TestOCIArtifactPromotionAndRollback(t *testing.T) {
	host := signtest.Registry(t, false)
	oci := &source.OCI{URL: "oci://" + host + "/policies/tuf:latest", Insecure: true}
	e := newEnvWith(t, tuftest.Options{Envs: []string{"staging", "prod"}})
	push := func() {
		t.Helper()
		if _, err := source.PushOCI(t.Context(), e.repo.Dir, oci); err != nil {
			t.Fatal(err)
		}
	}
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: oci})
	sync := func(want string) {
		t.Helper()
		push()
		if err := s.Sync(t.Context(), "prod"); err != nil {
			t.Fatal(err)
		}
		if !e.allowed(t, want) {
			t.Fatalf("%s not enforced: %+v", want, status(t, s))
		}
	}
	sync("v1")
	e.repo.Publish(t, "staging", allowing("reg.example.com/v2/**"))
	if _, err := e.repo.Promote("staging", "prod", e.repo.Signers); err != nil {
		t.Fatal(err)
	}
	sync("v2")
	if _, err := e.repo.Rollback("prod", 1, e.repo.Signers); err != nil {
		t.Fatal(err)
	}
	sync("v1")
	if e.allowed(t, "v2") {
		t.Fatal("v2 still enforced after the rollback")
	}
}

// An artifact that does not change is not read again (a HEAD of its tag
// says so), but its timestamp goes on ageing: a repository frozen by the
// registry, or by whoever controls it, expires as it would if read.
func TestAttackOCIFreezeUnchangedArtifactExpires(t *testing.T) {
	reg, url := startCountingRegistry(t)
	e := newEnv(t)
	oci := &source.OCI{URL: url, Insecure: true}
	reg.learn(t, e.repo.Dir)
	if _, err := source.PushOCI(t.Context(), e.repo.Dir, oci); err != nil {
		t.Fatal(err)
	}
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: &source.OCI{URL: oci.URL, Insecure: true}})
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	e.clock.T = e.clock.T.Add(time.Hour) // still fresh
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if reg.reqs["manifest"] != 0 || reg.reqs["timestamp.json"] != 0 || reg.reqs["manifest (HEAD)"] != 1 {
		t.Fatalf("an unchanged artifact was read again: %v", reg.reqs)
	}
	e.clock.T = e.clock.T.Add(48 * time.Hour) // the timestamp (24 h) has expired
	err := s.Sync(t.Context(), "prod")
	var se *syncer.Error
	if !errors.As(err, &se) || se.Reason != syncer.ReasonMetadataExpired {
		t.Fatalf("err = %v, want MetadataExpired", err)
	}
}

// What an idle sync asks: with a URL pinned by digest, nothing; with a
// registry answering HEADs 503 (rate-limited, down), the HEAD and not the
// manifest as well, and the sync fails with the registry's answer.
func TestOCIIdleSyncRequests(t *testing.T) {
	reg, tagged := startCountingRegistry(t)
	e := newEnv(t)
	d, err := source.PushOCI(t.Context(), e.repo.Dir, &source.OCI{URL: tagged, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.TrimSuffix(tagged, ":prod") + "@" + d
	s := e.newSyncer(t, e.stateDir, syncer.Spec{Source: &source.OCI{URL: pinned, Insecure: true}})
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	if len(reg.reqs) != 0 {
		t.Fatalf("an idle sync of a pinned artifact asked %v", reg.reqs)
	}

	s2 := e.newSyncer(t, t.TempDir(), syncer.Spec{Source: &source.OCI{URL: tagged, Insecure: true}})
	if err := s2.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	reg.headStatus.Store(http.StatusServiceUnavailable)
	if err := s2.Sync(t.Context(), "prod"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the registry's 503", err)
	}
	if reg.reqs["manifest"] != 0 {
		t.Fatalf("the manifest was read after a HEAD answered 503: %v", reg.reqs)
	}
}
