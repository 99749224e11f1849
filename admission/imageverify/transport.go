package imageverify

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"ward.dev/ward/internal/httpbound"
)

// DefaultMaxResponseBytes bounds each registry response body: manifests,
// signature payloads and bundles are small.
const DefaultMaxResponseBytes = 4 << 20

// boundedTransport bounds response bodies and refuses compressed blobs.
type boundedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := (&httpbound.Transport{Next: t.next, Max: t.max}).RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if strings.Contains(req.URL.Path, "/blobs/") && resp.StatusCode == http.StatusOK {
		// Signatures, attestations and bundles are stored uncompressed;
		// ward never reads image layers. A compressed blob could expand
		// without bound once a library decompresses it: refuse it here.
		if err := refuseCompressed(resp, req.URL.Host); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	return resp, nil
}

// Magic numbers of gzip and zstd streams.
var compressedMagic = [][]byte{{0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}}

func refuseCompressed(resp *http.Response, host string) error {
	br := bufio.NewReaderSize(resp.Body, 64)
	head, _ := br.Peek(4)
	for _, m := range compressedMagic {
		if bytes.HasPrefix(head, m) {
			return fmt.Errorf("compressed blob from %s refused: signatures, attestations and bundles are read uncompressed", host)
		}
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	return nil
}

// newTransport is the HTTP transport for registries: custom roots when
// given, TLS 1.2 or later, bounded connection set-up, bounded bodies.
func newTransport(roots *x509.CertPool, maxBytes int64) http.RoundTripper {
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &boundedTransport{next: base, max: maxBytes}
}
