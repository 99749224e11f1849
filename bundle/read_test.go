package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"ward.dev/ward/bundle"
)

type entry struct {
	name     string
	data     string
	typeflag byte
	link     string
	size     int64 // overrides len(data) in the header when set
}

func policy(name, data string) entry { return entry{name: name, data: data, typeflag: tar.TypeReg} }

// manifestEntry is a manifest listing listed (path → content).
func manifestEntry(t *testing.T, listed map[string]string) entry {
	t.Helper()
	m := bundle.Manifest{APIVersion: bundle.APIVersion, Kind: bundle.Kind, Created: "1970-01-01T00:00:00Z"}
	for _, name := range sortedNames(listed) {
		sum := sha256.Sum256([]byte(listed[name]))
		m.Policies = append(m.Policies, bundle.PolicyFile{Path: name, SHA256: hex.EncodeToString(sum[:])})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return entry{name: bundle.ManifestName, data: string(b), typeflag: tar.TypeReg}
}

func sortedNames(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// craft builds a gzip'd tar of entries exactly as given.
func craft(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Size: int64(len(e.data)), Linkname: e.link}
		if e.typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			tw.Write([]byte(e.data))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestReadAcceptsABuiltBundle(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, samplePolicies)
	b, err := bundle.Build(filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundle.Read(bytes.NewReader(b.Bytes))
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest != b.Digest || len(c.Files) != 3 || string(c.Files["policies/a.yaml"]) != samplePolicies["policies/a.yaml"] {
		t.Fatalf("read back %s with %d files", c.Digest, len(c.Files))
	}
}

// Each hostile bundle is refused with the family and the entry it names.
func TestReadRefusesHostileBundles(t *testing.T) {
	good := map[string]string{"policies/a.yaml": "a: 1\n"}
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		kind  error
		entry string
	}{
		{"absolute path", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"), policy("/etc/passwd", "x"))
		}, bundle.ErrUnsafePath, "/etc/passwd"},
		{"dot-dot traversal", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/../../x.yaml", "x"))
		}, bundle.ErrUnsafePath, "policies/../../x.yaml"},
		{"unclean path", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies//a.yaml", "x"))
		}, bundle.ErrUnsafePath, "policies//a.yaml"},
		{"backslash", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy(`policies\..\x.yaml`, "x"))
		}, bundle.ErrUnsafePath, `policies\..\x.yaml`},
		{"symlink", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), entry{name: "policies/a.yaml", typeflag: tar.TypeSymlink, link: "/etc/shadow"})
		}, bundle.ErrNotRegular, "policies/a.yaml"},
		{"hard link", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), entry{name: "policies/a.yaml", typeflag: tar.TypeLink, link: "manifest.json"})
		}, bundle.ErrNotRegular, "policies/a.yaml"},
		{"device", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), entry{name: "policies/a.yaml", typeflag: tar.TypeChar})
		}, bundle.ErrNotRegular, "policies/a.yaml"},
		{"directory entry", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), entry{name: "policies/sub", typeflag: tar.TypeDir})
		}, bundle.ErrNotRegular, "policies/sub"},
		{"duplicate", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"), policy("policies/a.yaml", "a: 2\n"))
		}, bundle.ErrDuplicate, "policies/a.yaml"},
		{"unlisted file", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"), policy("policies/extra.yaml", "x"))
		}, bundle.ErrUnlisted, "policies/extra.yaml"},
		{"listed file missing", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good))
		}, bundle.ErrMissing, "policies/a.yaml"},
		{"hash mismatch", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 666\n"))
		}, bundle.ErrHashMismatch, "policies/a.yaml"},
		{"entry outside policies", func(t *testing.T) []byte {
			return craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"), policy("run.sh", "x"))
		}, bundle.ErrUnexpectedDir, "run.sh"},
		{"no manifest", func(t *testing.T) []byte {
			return craft(t, policy("policies/a.yaml", "a: 1\n"))
		}, bundle.ErrBadManifest, "manifest.json"},
		{"manifest with unknown field", func(t *testing.T) []byte {
			return craft(t, entry{name: "manifest.json", typeflag: tar.TypeReg, data: `{"apiVersion":"ward.dev/v1","kind":"Bundle","created":"1970-01-01T00:00:00Z","evil":1}`})
		}, bundle.ErrBadManifest, "manifest.json"},
		{"manifest of another kind", func(t *testing.T) []byte {
			return craft(t, entry{name: "manifest.json", typeflag: tar.TypeReg, data: `{"apiVersion":"v1","kind":"Pod","created":"1970-01-01T00:00:00Z"}`})
		}, bundle.ErrBadManifest, "manifest.json"},
		{"not gzip", func(t *testing.T) []byte { return []byte("plain text, not a bundle") }, bundle.ErrCorrupt, ""},
		{"truncated", func(t *testing.T) []byte {
			b := craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"))
			return b[:len(b)/2]
		}, bundle.ErrCorrupt, "manifest.json"},
		{"second gzip member appended", func(t *testing.T) []byte {
			b := craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"))
			return append(b, craft(t, policy("policies/evil.yaml", "x"))...)
		}, bundle.ErrCorrupt, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundle.Read(bytes.NewReader(tt.data(t)))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			var ee *bundle.EntryError
			if !errors.As(err, &ee) || ee.Entry != tt.entry {
				t.Fatalf("error %v names entry %q, want %q", err, ee.Entry, tt.entry)
			}
		})
	}
}

func TestReadEnforcesLimits(t *testing.T) {
	good := map[string]string{"policies/a.yaml": "a: 1\n", "policies/b.yaml": "b: 1\n"}
	data := craft(t, manifestEntry(t, good), policy("policies/a.yaml", "a: 1\n"), policy("policies/b.yaml", "b: 1\n"))
	tests := []struct {
		name   string
		limits bundle.Limits
		kind   error
	}{
		{"whole bundle", bundle.Limits{MaxBundleBytes: 10}, bundle.ErrTooLarge},
		{"one entry", bundle.Limits{MaxEntryBytes: 4}, bundle.ErrTooLarge},
		{"entry count", bundle.Limits{MaxEntries: 2}, bundle.ErrTooManyFiles},
		{"uncompressed total", bundle.Limits{MaxUncompressedBytes: 1024}, bundle.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bundle.Read(bytes.NewReader(data), bundle.WithLimits(tt.limits)); !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
		})
	}
}

// A gzip bomb: a few KiB that inflate to 1 GiB of zeros in one entry. The
// reader must stop at its uncompressed budget, not inflate it all.
func TestReadStopsAGzipBomb(t *testing.T) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "policies/bomb.yaml", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 30})
	zeros := make([]byte, 1<<20)
	for range 1 << 10 {
		tw.Write(zeros)
	}
	tw.Close()
	gz.Close()
	_, err := bundle.Read(bytes.NewReader(buf.Bytes()), bundle.WithLimits(bundle.Limits{MaxEntryBytes: 1 << 31, MaxUncompressedBytes: 8 << 20}))
	if !errors.Is(err, bundle.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	writeFiles(f, dir, samplePolicies)
	b, err := bundle.Build(filepath.Join(dir, "policies"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes)
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := bundle.Read(bytes.NewReader(data), bundle.WithLimits(bundle.Limits{MaxUncompressedBytes: 1 << 20}))
		if err != nil {
			var ee *bundle.EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		// Whatever is accepted is internally consistent.
		if len(c.Files) != len(c.Manifest.Policies) {
			t.Fatalf("%d files, %d listed", len(c.Files), len(c.Manifest.Policies))
		}
		for _, p := range c.Manifest.Policies {
			sum := sha256.Sum256(c.Files[p.Path])
			if hex.EncodeToString(sum[:]) != p.SHA256 {
				t.Fatalf("accepted %s with a wrong hash", p.Path)
			}
		}
	})
}
