package registryauth

import (
	"net/http"
	"time"
)

// WithACREndpoint sends ACR token exchanges to endpoint(host) with client:
// a registry stand-in on loopback.
func WithACREndpoint(endpoint func(host string) string, client *http.Client) Option {
	return func(o *options) { o.acrEndpoint, o.httpClient = endpoint, client }
}

// WithClock sets the clock the credential cache reads.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }
