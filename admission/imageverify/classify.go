package imageverify

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// isTransport reports whether err came from talking to the registry
// rather than from the content.
func isTransport(err error) bool {
	var te *transport.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &te) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// isNotFound reports whether the registry answered that what was asked
// for is not there (a referrer listed but deleted).
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
