package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/internal/certs"
	"ward.dev/ward/internal/controller"
	"ward.dev/ward/internal/server"
	"ward.dev/ward/sync/syncer"
)

// clusterParts are what in-cluster mode adds: a manager following
// PolicySources, a clientset for pull secrets.
type clusterParts struct {
	mgr       manager.Manager
	clientset kubernetes.Interface
	certs     *certs.Manager
}

func (o *serveOptions) cluster(log logr.Logger) (*clusterParts, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no --config and no cluster to follow: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log.WithName("manager"),
		Metrics:                 metricsserver.Options{BindAddress: "0"}, // ward serves /metrics itself
		HealthProbeBindAddress:  "0",
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "ward-status-writer",
		LeaderElectionNamespace: o.namespace,
		// The Secrets and ConfigMaps PolicySources refer to are watched in
		// ward's namespace only.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Namespaces: map[string]cache.Config{o.namespace: {}}},
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{o.namespace: {}}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to set up the controller manager: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &clusterParts{mgr: mgr, clientset: cs}, nil
}

func (c *clusterParts) namespaceLabels(ctx context.Context, ns string) (map[string]string, error) {
	var n corev1.Namespace
	if err := c.mgr.GetClient().Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
		return nil, err
	}
	return n.Labels, nil
}

// run starts the reconciler, the sync loop and the endpoints under the
// manager; every replica runs them, only the leader writes status.
func (c *clusterParts) run(ctx context.Context, syn *syncer.Syncer, srv *server.Server, o *serveOptions) error {
	if err := controller.Setup(c.mgr, syn, controller.Options{Namespace: o.namespace, StateDir: o.stateDir, Log: logr.FromContextOrDiscard(ctx).WithName("status")}); err != nil {
		return err
	}
	runs := []func(context.Context) error{syn.Run, srv.Serve}
	if c.certs != nil {
		runs = append(runs, c.certs.Run)
	}
	for _, f := range runs {
		if err := c.mgr.Add(everyReplica(f)); err != nil {
			return err
		}
	}
	return c.mgr.Start(ctx)
}

// everyReplica is a runnable that runs without leadership.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (f everyReplica) NeedLeaderElection() bool        { return false }
