package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
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
	ReasonInvalidSpec = "InvalidSpec"
	ReasonWaiting     = "WaitingForFirstSync"
)

// StatusWriter writes PolicySource status. Every replica records what it
// observes; only the elected leader (Start runs only there) writes it to
// the API server, coalescing updates per source.
type StatusWriter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Log      logr.Logger

	mu      sync.Mutex
	pending map[string]*observed
	wake    chan struct{}
	// stalled keeps each source's spec problem until a spec is accepted,
	// so that a sync of the old spec does not report it Ready.
	stalled map[string]error
}

// maxPendingEvents bounds the events kept per source between writes (a
// follower keeps them until it leads).
const maxPendingEvents = 10

type observed struct {
	generation int64
	sync       *syncer.Status
	specErr    error
	handled    string
	events     []event
}

type event struct {
	warning       bool
	reason, notes string
}

func (w *StatusWriter) entry(name string) *observed {
	w.mu.Lock()
	if w.pending == nil {
		w.pending = map[string]*observed{}
		w.stalled = map[string]error{}
	}
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	o, ok := w.pending[name]
	if !ok {
		o = &observed{}
		w.pending[name] = o
	}
	return o
}

func (w *StatusWriter) done() {
	for _, o := range w.pending {
		if n := len(o.events); n > maxPendingEvents {
			o.events = o.events[n-maxPendingEvents:]
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Synced records a sync's outcome (the syncer's status hook).
func (w *StatusWriter) Synced(st syncer.Status) {
	o := w.entry(st.Name)
	prev := o.sync
	o.sync = &st
	switch {
	case st.LastError != "":
		o.events = append(o.events, event{warning: true, reason: st.LastReason, notes: st.LastError})
	case st.Applied != nil && (prev == nil || prev.Applied == nil || prev.Applied.Digest != st.Applied.Digest || prev.Applied.Version != st.Applied.Version):
		o.events = append(o.events, event{reason: "Applied", notes: fmt.Sprintf("enforcing %s v%d (%s, commit %s)", st.Applied.Env, st.Applied.Version, st.Applied.Digest, st.Applied.Commit)})
	}
	w.done()
}

// Stalled records a spec that cannot be used.
func (w *StatusWriter) Stalled(name string, generation int64, err error) {
	o := w.entry(name)
	o.generation = generation
	if prev, ok := w.stalled[name]; !ok || prev.Error() != err.Error() {
		o.events = append(o.events, event{warning: true, reason: ReasonInvalidSpec, notes: err.Error()})
	}
	w.stalled[name] = err
	w.done()
}

// Accepted records a spec the sync loop took.
func (w *StatusWriter) Accepted(name string, generation int64) {
	o := w.entry(name)
	o.generation = generation
	delete(w.stalled, name)
	w.done()
}

// Handled records a handled reconcile request.
func (w *StatusWriter) Handled(name, value string) {
	o := w.entry(name)
	o.handled = value
	w.done()
}

// NeedLeaderElection: only the leader writes.
func (w *StatusWriter) NeedLeaderElection() bool { return true }

// Start writes pending status until ctx ends.
func (w *StatusWriter) Start(ctx context.Context) error {
	w.entry("")
	delete(w.pending, "")
	w.done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
		w.mu.Lock()
		batch := w.pending
		w.pending = map[string]*observed{}
		w.mu.Unlock()
		for name, o := range batch {
			w.mu.Lock()
			o.specErr = w.stalled[name]
			w.mu.Unlock()
			if err := w.write(ctx, name, o); err != nil {
				w.Log.Error(err, "failed to write status", "source", name)
				// Keep it for the next round; newer news wins, its events
				// are kept.
				w.mu.Lock()
				if newer, ok := w.pending[name]; !ok {
					w.pending[name] = o
				} else {
					newer.events = append(o.events, newer.events...)
					if newer.sync == nil {
						newer.sync = o.sync
					}
				}
				w.mu.Unlock()
				go func() { time.Sleep(2 * time.Second); w.entry(name); w.done() }()
			}
		}
	}
}

func (w *StatusWriter) write(ctx context.Context, name string, o *observed) error {
	var ps v1alpha1.PolicySource
	if err := w.Client.Get(ctx, types.NamespacedName{Name: name}, &ps); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	before := ps.DeepCopy()
	if o.generation > 0 {
		ps.Status.ObservedGeneration = o.generation
	}
	if o.handled != "" {
		ps.Status.LastHandledReconcileAt = o.handled
	}
	switch {
	case o.specErr != nil:
		conditions.MarkStalled(&ps, ReasonInvalidSpec, "%s", o.specErr.Error())
		conditions.MarkFalse(&ps, meta.ReadyCondition, ReasonInvalidSpec, "%s", o.specErr.Error())
		conditions.Delete(&ps, meta.ReconcilingCondition)
		ps.Status.LastFailure = ReasonInvalidSpec + ": " + o.specErr.Error()
	case o.sync != nil:
		st := o.sync
		conditions.Delete(&ps, meta.StalledCondition)
		if a := st.Applied; a != nil {
			ps.Status.Applied = &v1alpha1.AppliedBundle{Env: a.Env, Version: a.Version, Digest: a.Digest, Commit: a.Commit, Policies: a.Policies,
				Revision: a.Revision, AppliedAt: metav1.NewTime(a.AppliedAt), VerifiedAt: metav1.NewTime(a.VerifiedAt), Expired: a.Expired}
		}
		switch {
		case st.LastError != "":
			msg := st.LastError
			if st.Applied != nil {
				msg = fmt.Sprintf("%s; still enforcing %s v%d", msg, st.Applied.Env, st.Applied.Version)
			}
			conditions.MarkFalse(&ps, meta.ReadyCondition, st.LastReason, "%s", msg)
			conditions.Delete(&ps, meta.ReconcilingCondition)
			ps.Status.LastFailure = st.LastReason + ": " + st.LastError
		case st.Applied != nil:
			conditions.MarkTrue(&ps, meta.ReadyCondition, meta.SucceededReason, "enforcing %s v%d (%s)", st.Applied.Env, st.Applied.Version, short(st.Applied.Digest))
			conditions.Delete(&ps, meta.ReconcilingCondition)
		}
	default:
		if conditions.Get(&ps, meta.ReadyCondition) == nil {
			conditions.MarkReconciling(&ps, meta.ProgressingReason, "waiting for the first verified bundle")
			conditions.MarkFalse(&ps, meta.ReadyCondition, ReasonWaiting, "no verified bundle yet: every image is denied")
		}
	}
	if err := w.Client.Status().Patch(ctx, &ps, client.MergeFrom(before)); err != nil {
		return err
	}
	if w.Recorder != nil {
		for _, e := range o.events {
			kind := corev1.EventTypeNormal
			if e.warning {
				kind = corev1.EventTypeWarning
			}
			w.Recorder.Eventf(&ps, nil, kind, e.reason, "Sync", "%s", truncate(e.notes, 1024))
		}
	}
	return nil
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
