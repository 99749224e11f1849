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
	"syscall"
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
	// ErrNotRegular: a directory repository holds something other than a
	// regular file where a file is read (a FIFO, a device, a socket).
	ErrNotRegular = errors.New("not a regular file")
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
	// Non-blocking, so that a FIFO put in place of a file cannot hold the
	// open (and the sync loop) until a writer comes; only regular files are
	// read.
	f, err := root.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file: %w", path, fileKind(info.Mode()), ErrNotRegular)
	}
	data, err := ReadBounded(f, maxLength)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return data, nil
}

// fileKind names a non-regular file's type for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file"
	}
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
