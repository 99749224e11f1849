// Package server runs `ward serve`: the admission webhook and the push
// endpoint over HTTPS, and health, readiness, metrics and status over
// plain HTTP, next to the sync loop.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ward.dev/ward/admission"
	"ward.dev/ward/sync/syncer"
)

// Paths of the endpoints.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	PathStatus  = "/status"
	// PathPprof is Go's profiles, with Options.Profiling.
	PathPprof = "/debug/pprof/"
	// PathHook is the push endpoint: POST /hook/<source>, signed with
	// HMAC-SHA256 of the body in X-Hub-Signature-256 (GitHub, Gitea) or
	// X-Ward-Signature: "sha256=<hex>".
	PathHook = "/hook/"
)

// maxHookBody bounds a push notification's body.
const maxHookBody = 1 << 20

// Options configure a Server.
type Options struct {
	// Addr is the HTTPS address of the webhook and the push endpoint.
	Addr string
	// HealthAddr is the HTTP address of /healthz, /readyz, /metrics and
	// /status.
	HealthAddr string
	// TLS is the webhook's TLS configuration (a certificate is required).
	TLS *tls.Config
	// PushSecret enables /hook; without one it answers 404.
	PushSecret []byte
	Webhook    *admission.Webhook
	Syncer     *syncer.Syncer
	Gatherer   prometheus.Gatherer
	Log        logr.Logger
	// Profiling serves Go's profiles (net/http/pprof: CPU, heap,
	// goroutines, mutex, block) under /debug/pprof/ on the health address.
	// Off by default: profiles show the process's memory and stacks.
	Profiling bool
}

// Server is the running endpoints.
type Server struct {
	o             Options
	secure, plain net.Listener
}

// Listen opens both listeners, so that callers know the addresses (":0")
// before serving.
func Listen(o Options) (*Server, error) {
	if o.TLS == nil || (len(o.TLS.Certificates) == 0 && o.TLS.GetCertificate == nil) {
		return nil, errors.New("the webhook needs a TLS certificate")
	}
	secure, err := tls.Listen("tcp", o.Addr, o.TLS)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", o.Addr, err)
	}
	plain, err := net.Listen("tcp", o.HealthAddr)
	if err != nil {
		secure.Close()
		return nil, fmt.Errorf("failed to listen on %s: %w", o.HealthAddr, err)
	}
	return &Server{o: o, secure: secure, plain: plain}, nil
}

// Addr is the webhook's address; HealthAddr the health endpoints'.
func (s *Server) Addr() string       { return s.secure.Addr().String() }
func (s *Server) HealthAddr() string { return s.plain.Addr().String() }

// Serve serves until ctx ends, then shuts down gracefully (in-flight
// admission requests finish).
func (s *Server) Serve(ctx context.Context) error {
	secureMux := http.NewServeMux()
	s.o.Webhook.Register(secureMux)
	secureMux.HandleFunc(PathHook, s.hook)
	plainMux := http.NewServeMux()
	plainMux.HandleFunc(PathHealthz, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	plainMux.HandleFunc(PathReadyz, s.readyz)
	plainMux.HandleFunc(PathStatus, s.status)
	if s.o.Gatherer != nil {
		plainMux.Handle(PathMetrics, promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{}))
	}
	if s.o.Profiling {
		plainMux.HandleFunc(PathPprof, pprof.Index)
		plainMux.HandleFunc(PathPprof+"cmdline", pprof.Cmdline)
		plainMux.HandleFunc(PathPprof+"profile", pprof.Profile)
		plainMux.HandleFunc(PathPprof+"symbol", pprof.Symbol)
		plainMux.HandleFunc(PathPprof+"trace", pprof.Trace)
	}
	// Requests carry ctx's values (its logger, for what a decision logs
	// deep down), not its cancellation: shutting down drains them.
	base := func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	servers := []*http.Server{
		{Handler: secureMux, BaseContext: base, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second},
		{Handler: plainMux, BaseContext: base, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second},
	}
	listeners := []net.Listener{s.secure, s.plain}
	errc := make(chan error, 2)
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	return err
}

// readyz answers 200 once every source has a verified bundle to go by
// (enforcing, expired, or denying all by onExpiry), 503 with each pending
// source's state while any has none.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	sts := s.o.Syncer.Statuses()
	if len(sts) == 0 {
		http.Error(w, "no policy source", http.StatusServiceUnavailable)
		return
	}
	var lines []string
	for _, st := range sts {
		if !st.Serving() {
			lines = append(lines, fmt.Sprintf("%s: %s: %s", st.Name, st.State, st.Message))
		}
	}
	if len(lines) > 0 {
		http.Error(w, strings.Join(lines, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// StatusReport is what /status serves.
type StatusReport struct {
	// Ready is true when there is a source and every one is Ready
	// (enforcing an unexpired bundle, last sync succeeded): what `ward
	// status` exits 0 on.
	Ready bool `json:"ready"`
	// Serving is what /readyz answers: every source has a verified
	// bundle to go by.
	Serving bool            `json:"serving"`
	Sources []syncer.Status `json:"sources"`
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	sts := s.o.Syncer.Statuses()
	_ = enc.Encode(StatusReport{Ready: syncer.AllReady(sts), Serving: syncer.AllServing(sts), Sources: sts})
}

// hook triggers a sync of one source when the request is signed with the
// push secret.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) {
	if len(s.o.PushSecret) == 0 {
		http.Error(w, "push endpoint disabled: start ward serve with --push-secret-file", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody+1))
	if err != nil || len(body) > maxHookBody {
		http.Error(w, "body unreadable or over 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		sig = r.Header.Get("X-Ward-Signature")
	}
	if !validSignature(s.o.PushSecret, body, sig) {
		http.Error(w, "signature missing or wrong", http.StatusUnauthorized)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, PathHook)
	if !s.o.Syncer.Trigger(name) {
		http.Error(w, fmt.Sprintf("no policy source %q", name), http.StatusNotFound)
		return
	}
	s.o.Log.Info("sync triggered by push", "source", name)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "sync of %s triggered\n", name)
}

// validSignature checks "sha256=<hex HMAC-SHA256 of body>" in constant
// time.
func validSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign returns the signature header value for body (for clients and tests).
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
