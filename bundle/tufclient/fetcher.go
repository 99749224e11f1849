package tufclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
)

// Fetcher reads files of a TUF repository. path is slash-separated and
// relative to the repository root ("metadata/1.root.json",
// "targets/dev/<sha256>.bundle.tar.gz"). An implementation reads at most
// maxLength bytes, returns ErrNotFound (wrapped) for a missing file and
// ErrTooLarge (wrapped) for a longer one.
type Fetcher interface {
	Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error)
}

// Errors a Fetcher returns.
var (
	ErrNotFound = errors.New("not found")
	// ErrTooLarge is also a VerifyError kind: data over a length limit.
	ErrTooLarge = errors.New("over the length limit")
)

// ReadBounded reads r up to maxLength bytes, returning ErrTooLarge if there
// is more. Fetcher implementations use it.
func ReadBounded(r io.Reader, maxLength int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxLength {
		return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, maxLength)
	}
	return data, nil
}

// DirFetcher reads a repository in a local directory (tests, air-gapped
// clusters). Paths cannot leave the directory.
type DirFetcher struct {
	// Dir is the repository root.
	Dir string
}

// Fetch implements Fetcher.
func (d DirFetcher) Fetch(_ context.Context, path string, maxLength int64) ([]byte, error) {
	root, err := os.OpenRoot(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open repository %s: %w", d.Dir, err)
	}
	defer root.Close()
	f, err := root.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	data, err := ReadBounded(f, maxLength)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return data, nil
}

// HTTPFetcher reads a repository served over HTTP(S): metadata below
// MetadataURL and targets below TargetsURL.
type HTTPFetcher struct {
	MetadataURL string
	TargetsURL  string
	// Client defaults to http.DefaultClient.
	Client *http.Client
}

// Fetch implements Fetcher.
func (h HTTPFetcher) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	var url string
	switch {
	case strings.HasPrefix(path, "metadata/"):
		url = strings.TrimSuffix(h.MetadataURL, "/") + "/" + strings.TrimPrefix(path, "metadata/")
	case strings.HasPrefix(path, "targets/"):
		url = strings.TrimSuffix(h.TargetsURL, "/") + "/" + strings.TrimPrefix(path, "targets/")
	default:
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%s: %w (HTTP %d)", url, ErrNotFound, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("failed to fetch %s: HTTP %d", url, resp.StatusCode)
	case resp.ContentLength > maxLength:
		return nil, fmt.Errorf("%s: %w of %d bytes", url, ErrTooLarge, maxLength)
	}
	data, err := ReadBounded(resp.Body, maxLength)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", url, err)
	}
	return data, nil
}
