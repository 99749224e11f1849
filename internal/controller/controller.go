// Package controller runs ward inside a cluster: it turns PolicySource
// objects into the sync loop's sources on every replica, and on the
// elected leader only writes their status (Flux-style conditions Ready,
// Reconciling and Stalled, the applied bundle, the last failure) and
// events.
package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/predicates"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/sync/config"
	"ward.dev/ward/sync/syncer"
)

// specRetry is how soon a refused spec is tried again (its Secret or
// ConfigMap may appear).
const specRetry = time.Minute

// Reconciler keeps the sync loop's sources in step with the PolicySource
// objects. It runs on every replica: each one syncs and serves.
type Reconciler struct {
	// Client reads PolicySources (cached).
	Client client.Client
	// Reader reads ConfigMaps and Secrets directly (no cluster-wide
	// watch on secrets).
	Reader client.Reader
	// Namespace is where roots and secrets are looked up (ward's own).
	Namespace string
	Syncer    *syncer.Syncer
	StateDir  string
}

// Options are what Setup needs besides the manager and the sync loop.
type Options struct {
	// Namespace is where roots and secrets are looked up (ward's own).
	Namespace string
	// StateDir is the sync loop's state folder (Git clones go below it).
	StateDir string
	// Log is the status writer's logger.
	Log logr.Logger
}

// Setup registers ward's controllers with mgr for syn's sources: the
// reconciler on every replica, and the status writer, which projects syn's
// state onto PolicySource status, on the elected leader.
func Setup(mgr ctrl.Manager, syn *syncer.Syncer, o Options) error {
	w := &StatusWriter{Client: mgr.GetClient(), Syncer: syn, Recorder: mgr.GetEventRecorder("ward"), Log: o.Log}
	syn.Watch(w.Changed)
	if err := mgr.Add(w); err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: o.Namespace, Syncer: syn, StateDir: o.StateDir}
	return r.SetupWithManager(mgr)
}

// SetupWithManager registers the reconciler; it does not need leadership.
// Besides PolicySources it watches the Secrets and ConfigMaps of ward's
// namespace they refer to (credentials, pinned roots): a rotated token or
// a new root takes effect without a spec change.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Spec changes and reconcile requests, not our own status writes.
		For(&v1alpha1.PolicySource{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.referring(secretRefs))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.referring(configMapRefs))).
		Named("policysource").
		WithOptions(controller.Options{NeedLeaderElection: ptr(false)}).
		Complete(r)
}

func ptr[T any](v T) *T { return &v }

// secretRefs are the Secrets a PolicySource refers to.
func secretRefs(ps *v1alpha1.PolicySource) []string {
	var out []string
	if g := ps.Spec.Git; g != nil && g.SecretRef != nil {
		out = append(out, g.SecretRef.Name)
	}
	if o := ps.Spec.OCI; o != nil {
		if o.SecretRef != nil {
			out = append(out, o.SecretRef.Name)
		}
		if o.CertSecretRef != nil {
			out = append(out, o.CertSecretRef.Name)
		}
	}
	return out
}

// configMapRefs are the ConfigMaps a PolicySource refers to.
func configMapRefs(ps *v1alpha1.PolicySource) []string {
	if ps.Spec.RootConfigMap != nil {
		return []string{ps.Spec.RootConfigMap.Name}
	}
	return nil
}

// referring maps a Secret or ConfigMap of ward's namespace to the
// PolicySources that refer to it.
func (r *Reconciler) referring(refs func(*v1alpha1.PolicySource) []string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		if obj.GetNamespace() != r.Namespace {
			return nil
		}
		var list v1alpha1.PolicySourceList
		if err := r.Client.List(ctx, &list); err != nil {
			logr.FromContextOrDiscard(ctx).Error(err, "failed to list PolicySources")
			return nil
		}
		var out []reconcile.Request
		for i := range list.Items {
			if slices.Contains(refs(&list.Items[i]), obj.GetName()) {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
			}
		}
		return out
	}
}

// Reconcile applies one PolicySource to the sync loop.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	var ps v1alpha1.PolicySource
	if err := r.Client.Get(ctx, req.NamespacedName, &ps); err != nil {
		if apierrors.IsNotFound(err) {
			r.Syncer.Remove(req.Name)
			log.Info("policy source removed", "source", req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !ps.DeletionTimestamp.IsZero() {
		r.Syncer.Remove(ps.Name)
		return ctrl.Result{}, nil
	}
	spec, err := config.Spec(ps, clusterResolver{ctx: ctx, reader: r.Reader, namespace: r.Namespace}, r.StateDir)
	if err == nil {
		spec.Generation = ps.Generation
		spec.ReconcileRequest, _ = meta.ReconcileAnnotationValue(ps.Annotations)
		err = r.Syncer.Upsert(spec)
	}
	if err != nil {
		// A spec that cannot be used: a source that had a working spec
		// keeps it and its bundle; a new one denies every image instead of
		// dropping out. Status says why (Stalled); a Secret or ConfigMap
		// that appears later is picked up by the periodic retry.
		log.Info("policy source spec refused", "source", ps.Name, "reason", syncer.ReasonInvalidSpec, "error", err.Error())
		r.Syncer.Block(ps.Name, ps.Generation, ps.Spec.Env, err.Error())
		return ctrl.Result{RequeueAfter: specRetry}, nil
	}
	return ctrl.Result{}, nil
}

// clusterResolver reads roots from ConfigMaps and credentials from Secrets
// in ward's namespace.
type clusterResolver struct {
	ctx       context.Context
	reader    client.Reader
	namespace string
}

func (c clusterResolver) Path(path string) string { return path }

func (c clusterResolver) File(path string) ([]byte, error) {
	return nil, fmt.Errorf("rootFile %s: in a cluster, use root or rootConfigMap", path)
}

func (c clusterResolver) ConfigMapKey(name, key string) ([]byte, error) {
	var cm corev1.ConfigMap
	if err := c.reader.Get(c.ctx, types.NamespacedName{Namespace: c.namespace, Name: name}, &cm); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: %w", c.namespace, name, err)
	}
	if v, ok := cm.Data[key]; ok {
		return []byte(v), nil
	}
	if v, ok := cm.BinaryData[key]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("ConfigMap %s/%s has no key %q", c.namespace, name, key)
}

func (c clusterResolver) Secret(name string) (map[string][]byte, error) {
	var s corev1.Secret
	if err := c.reader.Get(c.ctx, types.NamespacedName{Namespace: c.namespace, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", c.namespace, name, err)
	}
	return s.Data, nil
}
