package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ward.dev/ward/api/v1alpha1"
	"ward.dev/ward/sync/syncer"
)

// Reasons of conditions beyond the sync loop's.
const (
	ReasonWaiting = "WaitingForFirstSync"
	ReasonDenyAll = "DenyingAll"
)

// ownedConditions are the conditions ward writes; the patch helper
// resolves conflicts on them in ward's favour.
var ownedConditions = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}

// StatusWriter writes PolicySource status on the elected leader (Start runs
// only there). It keeps nothing of a source's state: each write projects
// the sync loop's Status of that moment onto the object and patches it,
// coalescing changes per source.
type StatusWriter struct {
	Client   client.Client
	Syncer   *syncer.Syncer
	Recorder events.EventRecorder
	Log      logr.Logger

	mu    sync.Mutex
	dirty map[string]bool
	wake  chan struct{}
	// written is the status last written per source, to tell what changed
	// since (events).
	written map[string]syncer.Status
}

// Changed marks a source for writing (the sync loop's watch).
func (w *StatusWriter) Changed(name string) {
	w.mu.Lock()
	w.init()
	w.dirty[name] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *StatusWriter) init() {
	if w.dirty == nil {
		w.dirty, w.written, w.wake = map[string]bool{}, map[string]syncer.Status{}, make(chan struct{}, 1)
	}
}

// NeedLeaderElection: only the leader writes.
func (w *StatusWriter) NeedLeaderElection() bool { return true }

// retryAfter is how soon a failed write is tried again.
const retryAfter = 2 * time.Second

// Start writes every source's status, then each changed one, until ctx
// ends.
func (w *StatusWriter) Start(ctx context.Context) error {
	for _, name := range w.Syncer.Sources() {
		w.Changed(name)
	}
	w.mu.Lock()
	w.init()
	wake := w.wake
	w.mu.Unlock()
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil
		case <-wake:
		case <-retry.C:
		}
		w.mu.Lock()
		batch := w.dirty
		w.dirty = map[string]bool{}
		w.mu.Unlock()
		for name := range batch {
			if err := w.write(ctx, name); err != nil {
				w.Log.Error(err, "failed to write status", "source", name)
				w.mu.Lock()
				w.dirty[name] = true
				w.mu.Unlock()
				retry.Reset(retryAfter)
			}
		}
	}
}

func (w *StatusWriter) write(ctx context.Context, name string) error {
	st, ok := w.Syncer.Status(name)
	if !ok {
		w.mu.Lock()
		delete(w.written, name)
		w.mu.Unlock()
		return nil // removed: nothing to write
	}
	var ps v1alpha1.PolicySource
	if err := w.Client.Get(ctx, types.NamespacedName{Name: name}, &ps); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	patcher := patch.NewSerialPatcher(&ps, w.Client)
	Project(&ps, st)
	if err := patcher.Patch(ctx, &ps, patch.WithOwnedConditions{Conditions: ownedConditions}, patch.WithFieldOwner("ward")); err != nil {
		return err
	}
	w.mu.Lock()
	prev, had := w.written[name]
	w.written[name] = st
	w.mu.Unlock()
	if w.Recorder != nil {
		for _, e := range changes(prev, had, st) {
			kind := corev1.EventTypeNormal
			if e.warning {
				kind = corev1.EventTypeWarning
			}
			w.Recorder.Eventf(&ps, nil, kind, e.reason, "Sync", "%s", truncate(e.notes, 1024))
		}
	}
	return nil
}

// Project sets a PolicySource's status from the sync loop's Status of its
// source: conditions, state, observed generation and applied bundle all
// from the one snapshot.
func Project(ps *v1alpha1.PolicySource, st syncer.Status) {
	ps.Status.ObservedGeneration = st.ObservedGeneration
	ps.Status.State = st.State
	ps.Status.LastHandledReconcileAt = st.LastHandledReconcileAt
	ps.Status.Applied = nil
	if a := st.Applied; a != nil {
		ps.Status.Applied = &v1alpha1.AppliedBundle{Env: a.Env, Version: a.Version, Digest: a.Digest, Commit: a.Commit, Policies: a.Policies,
			Revision: a.Revision, AppliedAt: metav1.NewTime(a.AppliedAt), VerifiedAt: metav1.NewTime(a.VerifiedAt), Expired: a.Expired,
			TrustRoots: a.TrustRoots, ClusterReferences: slices.Clone(a.ClusterReferences)}
	}
	ps.Status.LastFailure = ""
	if st.LastError != "" {
		ps.Status.LastFailure = st.LastReason + ": " + st.LastError
	}

	if st.Stalled != "" {
		conditions.MarkStalled(ps, syncer.ReasonInvalidSpec, "%s", st.Stalled)
	} else {
		conditions.Delete(ps, meta.StalledCondition)
	}
	if st.Reconciling {
		conditions.MarkReconciling(ps, meta.ProgressingReason, "reconciling generation %d", st.Generation)
	} else {
		conditions.Delete(ps, meta.ReconcilingCondition)
	}
	switch {
	case st.Ready:
		msg := st.Message
		if st.Applied != nil {
			msg = fmt.Sprintf("%s (%s)", msg, short(st.Applied.Digest))
		}
		conditions.MarkTrue(ps, meta.ReadyCondition, meta.SucceededReason, "%s", msg)
	case st.Stalled != "":
		conditions.MarkFalse(ps, meta.ReadyCondition, syncer.ReasonInvalidSpec, "%s; %s", st.Stalled, still(st))
	case st.LastError != "":
		conditions.MarkFalse(ps, meta.ReadyCondition, st.LastReason, "%s; %s", st.LastError, still(st))
	case st.State == syncer.StateEnforcing && st.Reconciling:
		conditions.MarkUnknown(ps, meta.ReadyCondition, meta.ProgressingReason, "reconciling generation %d; %s", st.Generation, st.Message)
	case st.State == syncer.StatePending:
		conditions.MarkFalse(ps, meta.ReadyCondition, ReasonWaiting, "%s", st.Message)
	case st.State == syncer.StateDenyAll:
		conditions.MarkFalse(ps, meta.ReadyCondition, ReasonDenyAll, "%s", st.Message)
	default:
		conditions.MarkFalse(ps, meta.ReadyCondition, syncer.ReasonMetadataExpired, "%s", st.Message)
	}
}

type event struct {
	warning       bool
	reason, notes string
}

// changes are what changed between two statuses written, as events.
func changes(prev syncer.Status, had bool, st syncer.Status) []event {
	var out []event
	if st.Stalled != "" && st.Stalled != prev.Stalled {
		out = append(out, event{warning: true, reason: syncer.ReasonInvalidSpec, notes: st.Stalled})
	}
	if st.LastError != "" && st.Failures != prev.Failures {
		out = append(out, event{warning: true, reason: st.LastReason, notes: st.LastError + "; " + still(st)})
	}
	if st.State != prev.State && had && st.State != syncer.StateEnforcing {
		out = append(out, event{warning: true, reason: ReasonDenyAll, notes: st.Message})
		if st.State == syncer.StateExpired {
			out[len(out)-1].reason = syncer.ReasonMetadataExpired
		}
	}
	if a := st.Applied; a != nil && st.State == syncer.StateEnforcing &&
		(prev.Applied == nil || prev.Applied.Digest != a.Digest || prev.Applied.Version != a.Version || prev.State != st.State) {
		out = append(out, event{reason: "Applied", notes: fmt.Sprintf("enforcing %s v%d (%s, commit %s)", a.Env, a.Version, a.Digest, a.Commit)})
	}
	return out
}

// still is the state's message after something went wrong: "still
// enforcing prod v2" when the bundle before stays enforced.
func still(st syncer.Status) string {
	if st.State == syncer.StateEnforcing {
		return "still " + st.Message
	}
	return st.Message
}

func short(digest string) string {
	if i := strings.Index(digest, ":"); i >= 0 && len(digest) > i+13 {
		return digest[:i+13]
	}
	return digest
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
