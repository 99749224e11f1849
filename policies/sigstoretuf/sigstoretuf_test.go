package sigstoretuf_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"ward.dev/ward/internal/signtest"
	"ward.dev/ward/internal/tuftest"
	"ward.dev/ward/policies/sigstoretuf"
)

// serialize is the repository folder as policy-controller's TrustRoot
// "repository" holds it: a gzipped tar of repository/.
func serialize(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := tw.WriteHeader(&tar.Header{Name: "repository/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestReadTrustMaterial(t *testing.T) {
	s := signtest.NewSigstore(t)
	trJSON := s.TrustedRootJSON(t)
	dir := t.TempDir()
	rootJSON := tuftest.NewSigstoreMirror(t, dir, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: trJSON}}, time.Now().Add(24*time.Hour)).Root
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	check := func(t *testing.T, tr *root.TrustedRoot, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.FulcioCertificateAuthorities()) != 1 || len(tr.RekorLogs()) != 1 || len(tr.TimestampingAuthorities()) != 1 {
			t.Fatalf("trusted root: %d CAs, %d logs, %d TSAs", len(tr.FulcioCertificateAuthorities()), len(tr.RekorLogs()), len(tr.TimestampingAuthorities()))
		}
	}
	t.Run("folder mirror", func(t *testing.T) {
		tr, err := sigstoretuf.FromMirror(t.Context(), dir, rootJSON, sigstoretuf.Options{}, time.Now())
		check(t, tr, err)
	})
	t.Run("http mirror", func(t *testing.T) {
		tr, err := sigstoretuf.FromMirror(t.Context(), srv.URL, rootJSON, sigstoretuf.Options{}, time.Now())
		check(t, tr, err)
	})
	t.Run("serialized", func(t *testing.T) {
		tr, err := sigstoretuf.FromSerialized(rootJSON, serialize(t, dir), sigstoretuf.Options{})
		check(t, tr, err)
	})
}

// Attacks and bad input: each refused with a one-line error.
func TestRefused(t *testing.T) {
	s := signtest.NewSigstore(t)
	trJSON := s.TrustedRootJSON(t)
	good := func(t *testing.T, expires time.Time) (string, []byte) {
		dir := t.TempDir()
		return dir, tuftest.NewSigstoreMirror(t, dir, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: trJSON}}, expires).Root
	}
	t.Run("another root", func(t *testing.T) {
		dir, _ := good(t, time.Now().Add(time.Hour))
		_, other := good(t, time.Now().Add(time.Hour))
		if _, err := sigstoretuf.FromMirror(t.Context(), dir, other, sigstoretuf.Options{}, time.Now()); err == nil {
			t.Fatal("a repository signed by other keys was accepted")
		}
	})
	t.Run("tampered target", func(t *testing.T) {
		dir, rootJSON := good(t, time.Now().Add(time.Hour))
		matches, _ := filepath.Glob(filepath.Join(dir, "targets", "*.trusted_root.json"))
		os.WriteFile(matches[0], bytes.Replace(trJSON, []byte("certificateAuthorities"), []byte("certificateAuthoritiez"), 1), 0o644)
		_, err := sigstoretuf.FromMirror(t.Context(), dir, rootJSON, sigstoretuf.Options{}, time.Now())
		if err == nil {
			t.Fatal("a tampered target was accepted")
		}
		if _, err := sigstoretuf.FromSerialized(rootJSON, serialize(t, dir), sigstoretuf.Options{}); err == nil {
			t.Fatal("a tampered target was accepted from the serialized copy")
		}
	})
	t.Run("expired mirror", func(t *testing.T) {
		dir, rootJSON := good(t, time.Now().Add(time.Hour))
		if _, err := sigstoretuf.FromMirror(t.Context(), dir, rootJSON, sigstoretuf.Options{}, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("expired metadata: %v", err)
		}
		// A serialized copy is frozen: its expiry is not judged now.
		if _, err := sigstoretuf.FromSerialized(rootJSON, serialize(t, dir), sigstoretuf.Options{}); err != nil {
			t.Fatalf("frozen copy: %v", err)
		}
	})
	t.Run("path traversal", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "../../etc/passwd", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
		tw.Close()
		zw.Close()
		if _, err := sigstoretuf.FromSerialized([]byte("{}"), buf.Bytes(), sigstoretuf.Options{}); err == nil || !strings.Contains(err.Error(), "leaves the archive") {
			t.Fatalf("path traversal: %v", err)
		}
	})
	t.Run("not gzip", func(t *testing.T) {
		if _, err := sigstoretuf.FromSerialized([]byte("{}"), []byte("plain"), sigstoretuf.Options{}); err == nil || !strings.Contains(err.Error(), "not gzip") {
			t.Fatalf("not gzip: %v", err)
		}
	})
}

// A repository from before trusted_root.json: targets marked with sigstore
// custom metadata.
func TestLegacyTargets(t *testing.T) {
	s := signtest.NewSigstore(t)
	dir := t.TempDir()
	custom := func(usage string) []byte {
		return []byte(`{"sigstore":{"usage":"` + usage + `","status":"Active","uri":"https://example.com"}}`)
	}
	rootJSON := tuftest.NewSigstoreMirror(t, dir, map[string]tuftest.SigstoreTarget{
		"fulcio.crt.pem": {Data: []byte(s.CAPEM), Custom: custom("Fulcio")},
		"rekor.pub":      {Data: []byte(s.RekorPEM), Custom: custom("Rekor")},
		"readme.txt":     {Data: []byte("hello")},
	}, time.Now().Add(time.Hour)).Root
	tr, err := sigstoretuf.FromMirror(t.Context(), dir, rootJSON, sigstoretuf.Options{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.FulcioCertificateAuthorities()) != 1 || len(tr.RekorLogs()) != 1 {
		t.Fatalf("%d CAs, %d Rekor logs", len(tr.FulcioCertificateAuthorities()), len(tr.RekorLogs()))
	}
}

// FuzzFromSerialized feeds hostile archives (a bundle's TrustRoot
// "repository") to the reader: it must return, within its bounds, an
// error or trust material verified from the root: no archive the fuzzer
// makes is signed by it, so whatever verifies is the seed's trusted root
// (one CA, one Rekor log).
func FuzzFromSerialized(f *testing.F) {
	s := signtest.NewSigstore(f)
	dir := f.TempDir()
	trJSON := s.TrustedRootJSON(f)
	rootJSON := tuftest.NewSigstoreMirror(f, dir, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: trJSON}}, time.Now().Add(time.Hour)).Root
	f.Add(serialize(f, dir))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, archive []byte) {
		tr, err := sigstoretuf.FromSerialized(rootJSON, archive, sigstoretuf.Options{})
		if err != nil {
			return
		}
		if len(tr.FulcioCertificateAuthorities()) != 1 || len(tr.RekorLogs()) != 1 {
			t.Fatalf("an archive verified with %d CAs and %d Rekor logs: not the signed trusted root", len(tr.FulcioCertificateAuthorities()), len(tr.RekorLogs()))
		}
	})
}

// A mirror that rolls back to an older, still unexpired version is not
// followed: the trusted metadata kept between reads only goes forward,
// and the last verified copy stays.
func TestRemotesRefuseRollback(t *testing.T) {
	first, second := signtest.NewSigstore(t), signtest.NewSigstore(t)
	dir := t.TempDir()
	mirror := tuftest.NewSigstoreMirror(t, dir, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: first.TrustedRootJSON(t)}}, time.Now().Add(time.Hour))
	oldTimestamp, err := os.ReadFile(filepath.Join(dir, "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := &sigstoretuf.Remotes{Dir: t.TempDir()}
	v1, err := r.Get(t.Context(), dir, mirror.Root, sigstoretuf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mirror.Publish(t, map[string]tuftest.SigstoreTarget{"trusted_root.json": {Data: second.TrustedRootJSON(t)}})
	v2, err := r.Get(t.Context(), dir, mirror.Root, sigstoretuf.Options{})
	if err != nil || v2.Version == v1.Version {
		t.Fatalf("second version: %v, %v", v2, err)
	}
	// The mirror serves version 1 again.
	if err := os.WriteFile(filepath.Join(dir, "timestamp.json"), oldTimestamp, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(t.Context(), dir, mirror.Root, sigstoretuf.Options{})
	if err != nil || got.Version != v2.Version {
		t.Fatalf("after the rollback: version %v (v1 %s, v2 %s), %v", got, v1.Version, v2.Version, err)
	}
	// A new reader over the same folder (a restart) refuses it too.
	r2 := &sigstoretuf.Remotes{Dir: r.Dir}
	if got, err := r2.Get(t.Context(), dir, mirror.Root, sigstoretuf.Options{}); err != nil || got.Version != v2.Version {
		t.Fatalf("after a restart: %v, %v", got, err)
	}
}
