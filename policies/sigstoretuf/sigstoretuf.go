// Package sigstoretuf reads a Sigstore instance's trust material
// (trusted_root.json, or the older targets marked with sigstore custom
// metadata) out of its TUF repository, verified with go-tuf from a pinned
// root: from a serialized copy of the repository (policy-controller's
// TrustRoot "repository", a gzipped tar) or from a mirror (a URL or a
// folder).
package sigstoretuf

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Defaults of policy-controller's TrustRoot.
const (
	DefaultTargets           = "targets"
	DefaultTrustedRootTarget = "trusted_root.json"
)

// Bounds on a serialized repository.
const (
	MaxArchiveBytes = 32 << 20
	MaxEntries      = 4096
	MaxFileBytes    = 8 << 20
)

// Options say where in the repository the trust material is.
type Options struct {
	// Targets is the folder of target files (default "targets").
	Targets string
	// TrustedRootTarget is the target holding trusted_root.json (default
	// "trusted_root.json").
	TrustedRootTarget string
}

func (o Options) targets() string {
	if o.Targets == "" {
		return DefaultTargets
	}
	return strings.Trim(o.Targets, "/")
}

func (o Options) trustedRoot() string {
	if o.TrustedRootTarget == "" {
		return DefaultTrustedRootTarget
	}
	return o.TrustedRootTarget
}

// FromSerialized verifies a serialized TUF repository (a gzipped tar of the
// repository folder, as policy-controller's TrustRoot "repository" holds
// it) from rootJSON, and returns its trust material.
//
// The copy is frozen: every signature is verified from the pinned root
// through root rotations, timestamp, snapshot and targets to the target's
// hashes, but expiry is judged at the moment just before the first of its
// metadata expires, not now. A copy is as fresh as the signed bundle that
// carries it, whose own metadata expires; it was current when it was
// imported.
func FromSerialized(rootJSON, archive []byte, o Options) (*root.TrustedRoot, error) {
	files, err := untar(archive)
	if err != nil {
		return nil, fmt.Errorf("the serialized repository: %w", err)
	}
	f := mapFetcher(files)
	ref, err := frozenTime(files)
	if err != nil {
		return nil, err
	}
	m, err := load(f, "mem://repository/", rootJSON, o, ref, "")
	if err != nil {
		return nil, err
	}
	return m.trusted, nil
}

// FromMirror reads a TUF mirror (an http(s) URL, or a folder holding the
// repository) from rootJSON, judging expiry at now.
func FromMirror(ctx context.Context, mirror string, rootJSON []byte, o Options, now time.Time) (*root.TrustedRoot, error) {
	m, err := fromMirror(ctx, mirror, rootJSON, o, now, "")
	if err != nil {
		return nil, err
	}
	return m.trusted, nil
}

// material is trust material read through TUF.
type material struct {
	trusted *root.TrustedRoot
	// json is the trusted root as JSON (what is persisted).
	json []byte
	// until is when the first of the metadata vouching for it expires.
	until time.Time
}

// fromMirror reads a mirror. With local, the trusted metadata is kept
// there between reads, so that versions only go forward (no rollback to an
// older, still unexpired version) and root rotations are not walked again.
func fromMirror(ctx context.Context, mirror string, rootJSON []byte, o Options, now time.Time, local string) (*material, error) {
	var f fetcher.Fetcher
	base := strings.TrimSuffix(mirror, "/") + "/"
	if u, err := url.Parse(mirror); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		df := fetcher.NewDefaultFetcher()
		df.SetHTTPClient(&http.Client{Timeout: httpTimeout})
		f = df
	} else {
		dir, err := filepath.Abs(mirror)
		if err != nil {
			return nil, err
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("mirror %s is neither an http(s) URL nor a folder", mirror)
		}
		f = dirFetcher(dir)
		base = "dir://repository/"
	}
	_ = ctx // go-tuf's fetchers take no context; the HTTP client has a timeout
	return load(f, base, rootJSON, o, now, local)
}

// httpTimeout bounds each request to a mirror.
const httpTimeout = 10 * time.Second

// load verifies the repository f serves at base from rootJSON, at the
// reference time ref, and reads its trust material. With local, trusted
// metadata is kept there between loads.
func load(f fetcher.Fetcher, base string, rootJSON []byte, o Options, ref time.Time, local string) (*material, error) {
	if local != "" {
		// The root trusted last time, reached from the pinned one.
		if data, err := os.ReadFile(filepath.Join(local, "root.json")); err == nil {
			rootJSON = data
		}
	}
	cfg, err := config.New(base, rootJSON)
	if err != nil {
		return nil, fmt.Errorf("the pinned TUF root: %w", err)
	}
	cfg.RemoteTargetsURL = base + o.targets() + "/"
	cfg.Fetcher = f
	cfg.DisableLocalCache = true
	if local != "" {
		if err := os.MkdirAll(filepath.Join(local, "targets"), 0o700); err != nil {
			return nil, err
		}
		cfg.DisableLocalCache = false
		cfg.LocalMetadataDir = local
		cfg.LocalTargetsDir = filepath.Join(local, "targets")
	}
	cfg.PrefixTargetsWithHash = true
	u, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("the pinned TUF root: %w", err)
	}
	u.UnsafeSetRefTime(ref.UTC())
	if err := u.Refresh(); err != nil {
		return nil, fmt.Errorf("failed to verify the TUF repository: %w", err)
	}
	get := func(name string) ([]byte, error) {
		info, err := u.GetTargetInfo(name)
		if err != nil {
			return nil, err
		}
		_, data, err := u.DownloadTarget(info, "", "")
		return data, err
	}
	trusted := u.GetTrustedMetadataSet()
	until := trusted.Root.Signed.Expires
	for _, e := range []time.Time{trusted.Timestamp.Signed.Expires, trusted.Snapshot.Signed.Expires, trusted.Targets[metadata.TARGETS].Signed.Expires} {
		if e.Before(until) {
			until = e
		}
	}
	data, err := get(o.trustedRoot())
	if err == nil {
		tr, err := root.NewTrustedRootFromJSON(data)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", o.trustedRoot(), err)
		}
		return &material{trusted: tr, json: data, until: until}, nil
	}
	if !strings.Contains(err.Error(), "target "+o.trustedRoot()+" not found") {
		return nil, fmt.Errorf("target %s: %w", o.trustedRoot(), err)
	}
	tr, err := legacyTargets(u.GetTopLevelTargets(), get)
	if err != nil {
		return nil, err
	}
	data, err = tr.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &material{trusted: tr, json: data, until: until}, nil
}

// legacyTargets builds trust material from targets marked with sigstore
// custom metadata (usage Fulcio, Rekor, CTFE, TSA), as Sigstore
// repositories held it before trusted_root.json.
func legacyTargets(targets map[string]*metadata.TargetFiles, get func(string) ([]byte, error)) (*root.TrustedRoot, error) {
	var cas []root.CertificateAuthority
	var tsas []root.TimestampingAuthority
	rekor, ctlogs := map[string]*root.TransparencyLog{}, map[string]*root.TransparencyLog{}
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		t := targets[name]
		if t.Custom == nil {
			continue
		}
		var custom struct {
			Sigstore struct {
				Usage string `json:"usage"`
				URI   string `json:"uri"`
			} `json:"sigstore"`
		}
		if json.Unmarshal(*t.Custom, &custom) != nil {
			continue
		}
		usage := custom.Sigstore.Usage
		if !slices.Contains([]string{"Fulcio", "Rekor", "CTFE", "TSA"}, usage) {
			continue
		}
		data, err := get(name)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", name, err)
		}
		switch usage {
		case "Fulcio", "TSA":
			certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
			if err != nil || len(certs) == 0 {
				return nil, fmt.Errorf("target %s holds no PEM certificates", name)
			}
			var rootCert *x509.Certificate
			var rest []*x509.Certificate
			for _, c := range certs {
				if c.IsCA && bytes.Equal(c.RawIssuer, c.RawSubject) {
					rootCert = c
				} else {
					rest = append(rest, c)
				}
			}
			if rootCert == nil {
				return nil, fmt.Errorf("target %s holds no self-signed root", name)
			}
			if usage == "Fulcio" {
				cas = append(cas, &root.FulcioCertificateAuthority{Root: rootCert, Intermediates: rest, URI: custom.Sigstore.URI})
				continue
			}
			ta := &root.SigstoreTimestampingAuthority{Root: rootCert, URI: custom.Sigstore.URI}
			for _, c := range rest {
				if c.IsCA {
					ta.Intermediates = append(ta.Intermediates, c)
				} else {
					ta.Leaf = c
				}
			}
			tsas = append(tsas, ta)
		case "Rekor", "CTFE":
			pk, err := cryptoutils.UnmarshalPEMToPublicKey(data)
			if err != nil {
				return nil, fmt.Errorf("target %s is not a PEM public key", name)
			}
			der, err := x509.MarshalPKIXPublicKey(pk)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", name, err)
			}
			id := sha256.Sum256(der)
			l := &root.TransparencyLog{BaseURL: custom.Sigstore.URI, ID: id[:], HashFunc: crypto.SHA256, PublicKey: pk, SignatureHashFunc: crypto.SHA256, ValidityPeriodStart: time.Unix(1, 0)}
			if usage == "Rekor" {
				rekor[fmt.Sprintf("%x", id)] = l
			} else {
				ctlogs[fmt.Sprintf("%x", id)] = l
			}
		}
	}
	if len(cas) == 0 {
		return nil, errors.New("the repository has no trusted_root.json and no target marked as a Fulcio CA")
	}
	return root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ctlogs, tsas, rekor)
}

// untar reads a gzipped tar into memory, within bounds, dropping a
// leading "repository/" folder (policy-controller's layout).
func untar(archive []byte) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(io.LimitReader(zr, MaxArchiveBytes+1))
	files := map[string][]byte{}
	total := 0
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		if n >= MaxEntries {
			return nil, fmt.Errorf("more than %d entries", MaxEntries)
		}
		if h.Typeflag != tar.TypeReg {
			continue // folders, links: nothing to read
		}
		name := path.Clean("/" + h.Name)[1:]
		if strings.Contains(h.Name, "..") {
			return nil, fmt.Errorf("entry %q leaves the archive", h.Name)
		}
		name = strings.TrimPrefix(name, "repository/")
		if h.Size > MaxFileBytes {
			return nil, fmt.Errorf("entry %s is %d bytes, over the limit of %d", name, h.Size, MaxFileBytes)
		}
		data, err := io.ReadAll(io.LimitReader(tr, MaxFileBytes+1))
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", name, err)
		}
		total += len(data)
		if total > MaxArchiveBytes {
			return nil, fmt.Errorf("over %d bytes uncompressed", MaxArchiveBytes)
		}
		files[name] = data
	}
	return files, nil
}

// frozenTime is the moment just before the first of the repository's
// newest root, timestamp, snapshot and targets metadata expires.
func frozenTime(files map[string][]byte) (time.Time, error) {
	expires := func(name string) (time.Time, bool) {
		var m struct {
			Signed struct {
				Expires time.Time `json:"expires"`
			} `json:"signed"`
		}
		data, ok := files[name]
		if !ok || json.Unmarshal(data, &m) != nil || m.Signed.Expires.IsZero() {
			return time.Time{}, false
		}
		return m.Signed.Expires, true
	}
	newest := func(role string) string {
		best, bestV := role+".json", int64(-1)
		for name := range files {
			var v int64
			if _, err := fmt.Sscanf(name, "%d."+role+".json", &v); err == nil && !strings.Contains(name, "/") && v > bestV {
				best, bestV = name, v
			}
		}
		return best
	}
	var first time.Time
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		e, ok := expires(newest(role))
		if !ok {
			continue
		}
		if first.IsZero() || e.Before(first) {
			first = e
		}
	}
	if first.IsZero() {
		return time.Time{}, errors.New("the serialized repository holds no TUF metadata (timestamp.json, N.root.json …)")
	}
	return first.Add(-time.Second), nil
}

// mapFetcher serves files from memory, under any base URL.
type mapFetcher map[string][]byte

// DownloadFile implements fetcher.Fetcher.
func (m mapFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	_, rel, _ := strings.Cut(urlPath, "://repository/")
	data, ok := m[rel]
	if !ok {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: urlPath}
	}
	if maxLength > 0 && int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, over %d", rel, len(data), maxLength)}
	}
	return data, nil
}

// dirFetcher serves files of a folder.
type dirFetcher string

// DownloadFile implements fetcher.Fetcher.
func (d dirFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	_, rel, _ := strings.Cut(urlPath, "://repository/")
	if strings.Contains(rel, "..") {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: urlPath}
	}
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: urlPath}
	}
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLength+1))
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	if maxLength > 0 && int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is over %d bytes", rel, maxLength)}
	}
	return data, nil
}
