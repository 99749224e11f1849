package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Limits bound what Read accepts. A zero field takes its default.
type Limits struct {
	// MaxBundleBytes bounds the compressed bundle (default 32 MiB).
	MaxBundleBytes int64
	// MaxUncompressedBytes bounds the sum of all entry sizes (default 128 MiB).
	MaxUncompressedBytes int64
	// MaxEntryBytes bounds one entry (default 4 MiB).
	MaxEntryBytes int64
	// MaxEntries bounds the number of entries (default 65,536).
	MaxEntries int
}

// DefaultLimits are the limits used where none are given.
var DefaultLimits = Limits{
	MaxBundleBytes:       32 << 20,
	MaxUncompressedBytes: 128 << 20,
	MaxEntryBytes:        4 << 20,
	MaxEntries:           1 << 16,
}

func (l Limits) withDefaults() Limits {
	if l.MaxBundleBytes <= 0 {
		l.MaxBundleBytes = DefaultLimits.MaxBundleBytes
	}
	if l.MaxUncompressedBytes <= 0 {
		l.MaxUncompressedBytes = DefaultLimits.MaxUncompressedBytes
	}
	if l.MaxEntryBytes <= 0 {
		l.MaxEntryBytes = DefaultLimits.MaxEntryBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	return l
}

// The families of a refused bundle. Read returns an *EntryError whose Is
// matches one of these.
var (
	ErrTooLarge      = errors.New("too large")
	ErrTooManyFiles  = errors.New("too many entries")
	ErrCorrupt       = errors.New("not a valid gzip'd tar")
	ErrUnsafePath    = errors.New("unsafe path")
	ErrNotRegular    = errors.New("not a regular file")
	ErrDuplicate     = errors.New("duplicate entry")
	ErrUnlisted      = errors.New("not listed in the manifest")
	ErrMissing       = errors.New("listed in the manifest but missing")
	ErrHashMismatch  = errors.New("sha256 does not match the manifest")
	ErrBadManifest   = errors.New("invalid manifest")
	ErrUnexpectedDir = errors.New("outside manifest.json and policies/")
)

// EntryError is a refused bundle: the family (one of the Err* values), the
// entry it concerns ("" for the bundle as a whole) and the detail.
type EntryError struct {
	Kind   error
	Entry  string
	Detail string
}

func (e *EntryError) Error() string {
	msg := "bundle refused: "
	if e.Entry != "" {
		msg += fmt.Sprintf("entry %q: ", e.Entry)
	}
	msg += e.Kind.Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is matches the error's family.
func (e *EntryError) Is(target error) bool { return e.Kind == target }

func refuse(kind error, entry, format string, args ...any) error {
	return &EntryError{Kind: kind, Entry: entry, Detail: fmt.Sprintf(format, args...)}
}

// Contents is a bundle read and checked for internal integrity: every file
// is listed in the manifest with a matching sha256 and nothing is unlisted.
// It says nothing about who made it; see Verified for that.
type Contents struct {
	// Digest is "sha256:<hex>" of the compressed bundle bytes.
	Digest string
	// Size is the length of the compressed bundle.
	Size int64
	// Manifest is the parsed manifest.
	Manifest Manifest
	// Files maps each policy entry ("policies/...") to its bytes, in the
	// manifest's order when ranged over Manifest.Policies.
	Files map[string][]byte
}

type readOptions struct{ limits Limits }

// ReadOption configures Read.
type ReadOption func(*readOptions)

// WithLimits sets the limits Read enforces; zero fields keep defaults.
func WithLimits(l Limits) ReadOption {
	return func(o *readOptions) { o.limits = l }
}

// Read parses a bundle as hostile input. It reads at most the size limit
// and refuses, naming the entry: absolute paths, "..", links, devices and
// other non-regular entries, duplicates, entries outside manifest.json and
// policies/, files missing from or not matching the manifest, and anything
// over a limit.
func Read(r io.Reader, opts ...ReadOption) (*Contents, error) {
	o := readOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	lim := o.limits.withDefaults()

	raw, err := io.ReadAll(io.LimitReader(r, lim.MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read bundle: %w", err)
	}
	if int64(len(raw)) > lim.MaxBundleBytes {
		return nil, refuse(ErrTooLarge, "", "bundle is over %d bytes", lim.MaxBundleBytes)
	}
	sum := sha256.Sum256(raw)
	c := &Contents{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(raw)), Files: map[string][]byte{}}

	rawReader := bytes.NewReader(raw)
	gz, err := gzip.NewReader(rawReader)
	if err != nil {
		return nil, refuse(ErrCorrupt, "", "%v", err)
	}
	gz.Multistream(false)
	budget := &budgetReader{r: bufio.NewReader(gz), left: lim.MaxUncompressedBytes, limit: lim.MaxUncompressedBytes}
	tr := tar.NewReader(budget)
	var manifest []byte
	seen := map[string]bool{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, readErr(err, "")
		}
		if n >= lim.MaxEntries {
			return nil, refuse(ErrTooManyFiles, "", "more than %d entries", lim.MaxEntries)
		}
		name := hdr.Name
		if err := checkEntryName(name); err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, refuse(ErrNotRegular, name, "tar type %q", string(hdr.Typeflag))
		}
		if seen[name] {
			return nil, refuse(ErrDuplicate, name, "")
		}
		seen[name] = true
		if hdr.Size < 0 || hdr.Size > lim.MaxEntryBytes {
			return nil, refuse(ErrTooLarge, name, "%d bytes, limit %d", hdr.Size, lim.MaxEntryBytes)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size+1))
		if err != nil {
			return nil, readErr(err, name)
		}
		if int64(len(data)) != hdr.Size {
			return nil, refuse(ErrCorrupt, name, "short entry")
		}
		if name == ManifestName {
			manifest = data
			continue
		}
		c.Files[name] = data
	}
	// Nothing but tar's zero padding may follow the archive inside the gzip
	// member, and nothing may follow the member.
	if err := checkTrailer(budget, rawReader); err != nil {
		return nil, err
	}
	if manifest == nil {
		return nil, refuse(ErrBadManifest, ManifestName, "missing")
	}
	m, err := parseManifest(manifest)
	if err != nil {
		return nil, refuse(ErrBadManifest, ManifestName, "%v", err)
	}
	c.Manifest = *m
	listed := make(map[string]bool, len(m.Policies))
	for _, p := range m.Policies {
		if listed[p.Path] {
			return nil, refuse(ErrBadManifest, p.Path, "listed twice")
		}
		listed[p.Path] = true
		data, ok := c.Files[p.Path]
		if !ok {
			return nil, refuse(ErrMissing, p.Path, "")
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != p.SHA256 {
			return nil, refuse(ErrHashMismatch, p.Path, "manifest says %s, entry is %s", p.SHA256, hex.EncodeToString(got[:]))
		}
	}
	for name := range c.Files {
		if !listed[name] {
			return nil, refuse(ErrUnlisted, name, "")
		}
	}
	return c, nil
}

// checkEntryName admits "manifest.json" and clean relative paths below
// policies/.
func checkEntryName(name string) error {
	switch {
	case name == "":
		return refuse(ErrUnsafePath, name, "empty name")
	case strings.HasPrefix(name, "/"):
		return refuse(ErrUnsafePath, name, "absolute path")
	case strings.ContainsAny(name, "\\\x00"):
		return refuse(ErrUnsafePath, name, "backslash or NUL in name")
	case path.Clean(name) != name:
		return refuse(ErrUnsafePath, name, "not a clean path")
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == ".." || part == "." {
			return refuse(ErrUnsafePath, name, "contains %q", part)
		}
	}
	if name == ManifestName {
		return nil
	}
	if !strings.HasPrefix(name, PoliciesDir+"/") {
		return refuse(ErrUnexpectedDir, name, "")
	}
	return nil
}

// readErr turns a failed read into a refusal: a refusal raised below (the
// uncompressed budget) as it is, anything else as a corrupt archive.
func readErr(err error, entry string) error {
	var ee *EntryError
	if errors.As(err, &ee) {
		return ee
	}
	return refuse(ErrCorrupt, entry, "%v", err)
}

// budgetReader stops reading once the uncompressed budget is spent, so a
// gzip bomb costs no more than the budget. Past it, it fails with the
// refusal itself, which the tar reader passes up unchanged.
type budgetReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte: only real data past the budget is an error.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, refuse(ErrTooLarge, "", "uncompressed size is over %d bytes", b.limit)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// checkTrailer reads what is left of the decompressed stream after the tar
// end marker (at most 64 KiB of zero padding is allowed) and checks that no
// compressed bytes follow the gzip member.
func checkTrailer(rest io.Reader, raw *bytes.Reader) error {
	const maxPadding = 64 << 10
	tail, err := io.ReadAll(io.LimitReader(rest, maxPadding+1))
	if err != nil {
		return readErr(err, "")
	}
	if len(tail) > maxPadding || bytes.IndexFunc(tail, func(r rune) bool { return r != 0 }) >= 0 {
		return refuse(ErrCorrupt, "", "data after the end of the archive")
	}
	if raw.Len() > 0 {
		return refuse(ErrCorrupt, "", "%d bytes after the gzip stream", raw.Len())
	}
	return nil
}
