// Package httpbound bounds HTTP response bodies: a RoundTripper that fails
// a body growing past a limit, so that no client reads without end from a
// hostile or broken server.
package httpbound

import (
	"fmt"
	"io"
	"net/http"
)

// Transport wraps Next and cuts every response body at Max bytes: a longer
// body fails to read with an error naming the host.
type Transport struct {
	Next http.RoundTripper
	Max  int64
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.Max {
		resp.Body.Close()
		return nil, fmt.Errorf("response from %s is %d bytes, over the limit of %d", req.URL.Host, resp.ContentLength, t.Max)
	}
	resp.Body = &body{rc: resp.Body, left: t.Max, max: t.Max, host: req.URL.Host}
	return resp, nil
}

type body struct {
	rc   io.ReadCloser
	left int64
	max  int64
	host string
}

func (b *body) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte: exactly max bytes is fine.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("response from %s is over the limit of %d bytes", b.host, b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
