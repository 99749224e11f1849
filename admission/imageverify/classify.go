package imageverify

import (
	"context"
	"errors"
	"net"

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
