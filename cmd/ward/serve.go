package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/certs"
	"ward.dev/ward/internal/server"
	"ward.dev/ward/sync/config"
	"ward.dev/ward/sync/syncer"
)

type serveOptions struct {
	config          string
	namespace       string
	leaderElect     bool
	stateDir        string
	addr            string
	healthAddr      string
	tlsCert         string
	tlsKey          string
	certWatcher     *certwatcher.CertWatcher
	hosts           []string
	pushSecretFile  string
	registryCA      string
	cloudRegistry   string
	profiling       bool
	decisionTimeout time.Duration
	tlsSecret       string
	webhookService  string
	webhookConfig   string
	log             logOptions
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [--config FILE]",
		Short: "Run the sync loop and the admission webhook",
		Long: `Run the sync loop and the admission webhook. With --config, without a
cluster: the policy sources are the PolicySource documents of the file.
Without it, in a cluster (in-cluster config, or KUBECONFIG): the
PolicySource objects, followed as they change; every replica syncs and
serves, one elected leader writes their status and events.

Each source's TUF repository is fetched, the environment's bundle verified
through the pinned root, compiled and swapped into the webhook with no
restart and no dropped request. A bundle that fails anywhere is never
swapped in: the last verified policies stay enforced and /status says why.
Each source is pending (no verified bundle yet: every image is denied),
enforcing, "enforcing, expired" (its metadata expired; onExpiry: keep) or
deny-all (expired with onExpiry: deny-all). /readyz answers 503 while any
source is pending. Trusted metadata and the last applied bundle persist in
--state-dir: after a restart with a source unreachable, the persisted
bundle is verified again and served.

Endpoints:
  https://ADDR/validate, /mutate    the admission webhook
  https://ADDR/hook/SOURCE          POST to sync at once (HMAC-SHA256 of the
                                    body in X-Hub-Signature-256; needs
                                    --push-secret-file)
  http://HEALTH-ADDR/healthz, /readyz, /metrics, /status

Logs are JSON lines (ts, level, logger, msg, key/values) on stderr, one
per admission decision that denies or warns; --log-level debug adds one per
admission. Metrics are prefixed ward_ (and controller-runtime's).

Without --tls-cert/--tls-key a self-signed certificate for --host names is
kept in the state folder; give its serving.crt to the API server as the
webhook's caBundle.

A config file:

  apiVersion: ward.dev/v1alpha1
  kind: PolicySource
  metadata: {name: prod}
  spec:
    env: prod
    rootFile: prod-root.json      # the root you pin (relative to this file)
    interval: 1m
    dir: {path: policies/tuf}     # or git: {...} or oci: {...}`,
		Example: `  ward serve --config ward-serve.yaml
  ward serve --config ward-serve.yaml --state-dir /var/lib/ward --push-secret-file hook.secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "config file of PolicySource documents (without it: PolicySource objects of the cluster)")
	f.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "ward-system"), "in a cluster: ward's namespace (roots, secrets, leader election)")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "in a cluster: elect one replica to write PolicySource status (every replica syncs and serves)")
	f.StringVar(&o.stateDir, "state-dir", "ward-state", "folder for trusted metadata, applied bundles and the self-signed certificate")
	f.StringVar(&o.addr, "addr", ":8443", "HTTPS address of the webhook and the push endpoint")
	f.StringVar(&o.healthAddr, "health-addr", ":8080", "HTTP address of /healthz, /readyz, /metrics and /status")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serving certificate (PEM); with --tls-key")
	f.StringVar(&o.tlsKey, "tls-key", "", "serving key (PEM)")
	f.StringSliceVar(&o.hosts, "host", []string{"localhost", "127.0.0.1"}, "names of the self-signed certificate")
	f.StringVar(&o.pushSecretFile, "push-secret-file", "", "file holding the HMAC secret of the push endpoint")
	f.StringVar(&o.registryCA, "registry-ca", "", "PEM file of CAs to trust for registry TLS (default: the system's)")
	bindCloudCredentials(cmd, &o.cloudRegistry)
	f.BoolVar(&o.profiling, "profiling", false, "serve Go's CPU, heap, goroutine, mutex and block profiles under /debug/pprof/ on --health-addr (go tool pprof http://HOST:8080/debug/pprof/profile); off by default: profiles show memory and stacks")
	f.StringVar(&o.tlsSecret, "webhook-tls-secret", "", "in a cluster: keep the serving certificate in this Secret of --namespace, made and rotated by ward, its CA written into the webhook configurations")
	f.StringVar(&o.webhookService, "webhook-service", "ward", "in a cluster: the webhook's Service (the certificate's DNS names)")
	f.StringVar(&o.webhookConfig, "webhook-config", "ward", "in a cluster: the Validating and Mutating webhook configurations whose caBundle ward keeps")
	f.DurationVar(&o.decisionTimeout, "decision-timeout", admission.DefaultDecisionTimeout, "time limit of one admission decision (keep it under the webhook's timeoutSeconds)")
	o.log.bind(cmd)
	return cmd
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	var specs []syncer.Spec
	if o.config != "" {
		sources, err := config.Load(o.config)
		if err != nil {
			return err
		}
		resolver := config.FileResolver{Dir: filepath.Dir(o.config)}
		for _, ps := range sources {
			sp, err := config.Spec(ps, resolver, o.stateDir)
			if err != nil {
				return err
			}
			specs = append(specs, sp)
		}
	}
	var (
		tlsConfig *tls.Config
		certNote  string
		err       error
	)
	if o.tlsSecret == "" || o.config != "" {
		if tlsConfig, certNote, err = o.tls(); err != nil {
			return err
		}
	}
	var pushSecret []byte
	if o.pushSecretFile != "" {
		if pushSecret, err = os.ReadFile(o.pushSecretFile); err != nil {
			return fmt.Errorf("failed to read --push-secret-file: %w", err)
		}
		if pushSecret = []byte(strings.TrimSpace(string(pushSecret))); len(pushSecret) < 16 {
			return errors.New("--push-secret-file: the secret must be at least 16 characters")
		}
	}
	var vopts []imageverify.Option
	if o.registryCA != "" {
		pool, err := readCAs(o.registryCA)
		if err != nil {
			return fmt.Errorf("--registry-ca: %w", err)
		}
		vopts = append(vopts, imageverify.WithRootCAs(pool))
	}

	log, err := o.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx := logr.NewContext(cmd.Context(), log)
	if o.certWatcher != nil {
		// Stopped, and waited for, when run returns.
		cwCtx, cwCancel := context.WithCancel(ctx)
		cwDone := make(chan struct{})
		defer func() { cwCancel(); <-cwDone }()
		go func() {
			defer close(cwDone)
			if err := o.certWatcher.Start(cwCtx); err != nil {
				log.Error(err, "failed to watch the serving certificate; the one loaded is served")
			}
		}()
	}
	// ward's own metrics, served on /metrics together with
	// controller-runtime's registry: the Go and process collectors, and in
	// a cluster its reconcile, work-queue, client and leader-election
	// metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	gatherers := prometheus.Gatherers{ctrlmetrics.Registry, reg}
	admissionMetrics := admission.NewMetrics(reg)
	pols := &admission.Policies{}
	var cl *clusterParts
	if o.config == "" {
		if cl, err = o.cluster(log); err != nil {
			return err
		}
		if o.tlsSecret != "" {
			cl.certs = &certs.Manager{Client: cl.mgr.GetClient(), Reader: cl.mgr.GetAPIReader(), Namespace: o.namespace, Secret: o.tlsSecret,
				Service: o.webhookService, WebhookConfig: o.webhookConfig, Log: log.WithName("certs")}
			if err := cl.certs.Ensure(ctx); err != nil {
				return fmt.Errorf("failed to set up the webhook serving certificate: %w", err)
			}
			tlsConfig = cl.certs.TLSConfig()
			certNote = fmt.Sprintf("serving certificate from Secret %s/%s, rotated by ward; caBundle kept in %s", o.namespace, o.tlsSecret, o.webhookConfig)
		}
	}
	// A swap leaves the compile's garbage (several times the new set's
	// size) to the runtime, which would keep it resident for minutes:
	// give it back at once.
	syn, err := syncer.New(specs, o.stateDir, pols, syncer.WithOnSwap(debug.FreeOSMemory))
	if err != nil {
		return err
	}
	syncer.NewMetrics(reg, syn)
	deciderOpts := []admission.DeciderOption{admission.WithDeciderMetrics(admissionMetrics)}
	cloud, err := cloudKeychain(o.cloudRegistry)
	if err != nil {
		return err
	}
	if cloud != nil {
		deciderOpts = append(deciderOpts, admission.WithFallbackKeychain(cloud))
	}
	if cl != nil {
		deciderOpts = append(deciderOpts, admission.WithKeychain(admission.PullSecretKeychain(cl.clientset)), admission.WithNamespaceLabels(cl.namespaceLabels),
			admission.WithSecrets(admission.SecretReader(cl.clientset, o.namespace)))
	}
	decider := admission.NewDecider(imageverify.New(vopts...), deciderOpts...)
	wh := admission.NewWebhook(decider, pols, admission.WithLogger(log.WithName("admission")),
		admission.WithMetrics(admissionMetrics), admission.WithDecisionTimeout(o.decisionTimeout))
	if o.profiling {
		// Sampled, so that the mutex and block profiles have something to
		// show at a small cost: 1 in 10 contentions, blocking over 10 µs.
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	}
	srv, err := server.Listen(server.Options{Addr: o.addr, HealthAddr: o.healthAddr, TLS: tlsConfig, PushSecret: pushSecret,
		Webhook: wh, Syncer: syn, Gatherer: gatherers, Log: log.WithName("server"), Profiling: o.profiling})
	if err != nil {
		return err
	}
	log.Info("serving", "webhook", "https://"+srv.Addr(), "paths", "/validate, /mutate"+hookPath(pushSecret),
		"health", "http://"+srv.HealthAddr(), "healthPaths", "/healthz, /readyz, /metrics, /status", "version", version)
	if certNote != "" {
		log.Info("serving certificate", "certificate", certNote)
	}
	for _, sp := range specs {
		log.Info("policy source", "source", sp.Name, "from", sp.Source.String(), "env", sp.Env, "interval", orDefault(sp.Interval, syncer.DefaultInterval).String())
	}
	if cl != nil {
		log.Info("following the cluster's PolicySources", "namespace", o.namespace, "leaderElection", o.leaderElect)
		return cl.run(ctx, syn, srv, o)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return syn.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx) })
	return g.Wait()
}

// buildInfo is ward_build_info: 1, labelled with the build.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ward_build_info", Help: "Always 1; the labels say which ward runs.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": runtime.Version()}})
	g.Set(1)
	return g
}

func hookPath(secret []byte) string {
	if len(secret) > 0 {
		return ", /hook/SOURCE"
	}
	return ""
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// certPollInterval is how often the serving certificate's files are read
// again, besides file-change notifications (which miss some Secret volume
// updates).
const certPollInterval = 10 * time.Second

func (o *serveOptions) tls() (*tls.Config, string, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.tlsCert != "" && o.tlsKey != "":
		// Reloaded as the files change (cert-manager renews them in the
		// mounted Secret): the renewed certificate is served without a
		// restart.
		w, err := certwatcher.New(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, "", fmt.Errorf("failed to load --tls-cert/--tls-key: %w", err)
		}
		o.certWatcher = w.WithWatchInterval(certPollInterval)
		cfg.GetCertificate = w.GetCertificate
		return cfg, fmt.Sprintf("serving certificate %s, reloaded when it changes", o.tlsCert), nil
	case o.tlsCert != "" || o.tlsKey != "":
		return nil, "", errors.New("--tls-cert and --tls-key go together")
	}
	c, path, err := server.SelfSignedCert(filepath.Join(o.stateDir, "tls"), o.hosts)
	if err != nil {
		return nil, "", fmt.Errorf("failed to make a self-signed certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{c}
	return cfg, fmt.Sprintf("self-signed certificate for %s: %s (the webhook's caBundle)", strings.Join(o.hosts, ", "), path), nil
}

func readCAs(path string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("%s holds no PEM certificates", path)
	}
	return pool, nil
}
