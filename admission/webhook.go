package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"ward.dev/ward/admission/review"
	"ward.dev/ward/admission/workload"
	"ward.dev/ward/policies"
)

// DefaultDecisionTimeout is how long a decision may take: under the API
// server's default webhook timeout of 10 s, so that a slow registry gives a
// clear deny instead of a webhook timeout.
const DefaultDecisionTimeout = 8 * time.Second

// Paths the webhook serves.
const (
	PathValidate = "/validate"
	PathMutate   = "/mutate"
)

// Webhook serves admission decisions over HTTP.
type Webhook struct {
	// allowTags admits verified images given by tag (see WithTagsUnsafe).
	allowTags bool
	decider   *Decider
	policies  *Policies
	timeout   time.Duration
	log       logr.Logger
	metrics   *Metrics
}

// WebhookOption configures a Webhook.
type WebhookOption func(*Webhook)

// WithDecisionTimeout bounds each decision (default DefaultDecisionTimeout).
func WithDecisionTimeout(d time.Duration) WebhookOption { return func(w *Webhook) { w.timeout = d } }

// WithLogger sets the logger for decisions that deny, warn or audit.
func WithLogger(l logr.Logger) WebhookOption { return func(w *Webhook) { w.log = l } }

// WithMetrics records decisions in m.
func WithMetrics(m *Metrics) WebhookOption { return func(w *Webhook) { w.metrics = m } }

// WithTagsUnsafe makes /validate admit images given by tag once their
// current digest verifies. Without it, an image governed by an
// enforce-mode policy must reach /validate pinned to its digest (the
// mutating webhook pins verified images): a tag could be moved to other
// content after the check.
func WithTagsUnsafe() WebhookOption { return func(w *Webhook) { w.allowTags = true } }

// NewWebhook serves decisions of d over the policies in p.
func NewWebhook(d *Decider, p *Policies, opts ...WebhookOption) *Webhook {
	w := &Webhook{decider: d, policies: p, timeout: DefaultDecisionTimeout, log: logr.Discard()}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Register adds /validate and /mutate to mux.
func (w *Webhook) Register(mux *http.ServeMux) {
	mux.Handle(PathValidate, w.Validator())
	mux.Handle(PathMutate, w.Mutator())
}

// Validator is the validating handler: the verdict, warnings and audit
// annotations.
func (w *Webhook) Validator() http.Handler {
	return w.handler("validate", w.validate)
}

// Mutator is the mutating handler: it pins verified images to their digest
// and never denies (the validating handler does).
func (w *Webhook) Mutator() http.Handler {
	return w.handler("mutate", w.mutate)
}

// handler reads the AdmissionReview, decides, lets respond turn the
// decision into a response, records the outcome and writes the response
// in the request's API version; requests with nothing to decide are
// answered directly. A panic while deciding answers 500, not a dropped
// connection.
func (w *Webhook) handler(name string, respond func(*Decision) review.Response) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		apiVersion, req, status, err := review.Read(r)
		var dec *Decision
		var resp review.Response
		if err != nil {
			req, resp = &review.Request{}, review.Errored(status, err)
		} else {
			dec, resp = w.decideSafely(r.Context(), name, req, respond)
		}
		resp.UID = req.UID
		elapsed := time.Since(start)
		w.metrics.observe(name, outcomeOf(dec, &resp), elapsed)
		if name == "validate" { // the mutating call repeats the same decision
			w.logDecision(req, dec, &resp, elapsed)
			if dec != nil {
				w.metrics.observePolicies(req.Namespace, req.Kind.Kind, dec, dec.modes)
			}
		}
		if err := review.Write(rw, apiVersion, resp); err != nil {
			w.log.Info("response not written as decided", "uid", req.UID, "error", err.Error())
		}
		// The decision has ended (it waits for every image it verifies;
		// a verification that goes on for the cache reads no object), so
		// nothing reads the body any more.
		req.Release()
	})
}

// decideSafely is decide and respond, with a panic turned into a 500
// response.
func (w *Webhook) decideSafely(ctx context.Context, name string, req *review.Request, respond func(*Decision) review.Response) (dec *Decision, resp review.Response) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error(fmt.Errorf("%v", p), "panic while deciding", "webhook", name, "uid", req.UID, "stack", string(debug.Stack()))
			dec, resp = nil, review.Errored(http.StatusInternalServerError, errors.New("ward failed to decide the request: an internal error; see ward's log"))
		}
	}()
	dec, early := w.decide(ctx, req)
	if early != nil {
		return nil, *early
	}
	return dec, respond(dec)
}

// decide runs a decision for an admission request, or returns the
// response itself when there is nothing to decide (a deletion, a kind
// without Pods) or the request cannot be decided (bad input).
func (w *Webhook) decide(ctx context.Context, req *review.Request) (dec *Decision, resp *review.Response) {
	kind := req.Kind.Kind
	if req.Operation == review.Delete || req.Operation == review.Connect || !workload.Supported(kind) || len(req.Object) == 0 {
		r := review.Allowed()
		return nil, &r
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	st := w.policies.Load()
	userInfo := map[string]any{"username": req.UserInfo.Username, "groups": toAny(req.UserInfo.Groups)}
	dec, err := w.decider.Decide(ctx, st, Request{
		Kind: kind, Namespace: req.Namespace, Name: req.Name, Operation: req.Operation,
		Object: req.Object, OldObject: req.OldObject, Fields: req.Fields, UserInfo: userInfo,
	})
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		}
		r := review.Errored(code, err)
		return nil, &r
	}
	return dec, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (w *Webhook) validate(dec *Decision) review.Response {
	var resp review.Response
	switch unpinned := w.unpinned(dec); {
	case !dec.Allowed:
		resp = review.Denied(dec.Message())
	case len(unpinned) > 0:
		resp = review.Denied(fmt.Sprintf("ward denied the request (%s): %s verified but not pinned to a digest, so the tag could be moved after this check; ward's mutating webhook pins verified images (is it installed?), or give the image by digest",
			bundleLabels(dec.Bundles), strings.Join(unpinned, ", ")))
	default:
		resp = review.Allowed()
	}
	resp.Warnings = dec.Warnings()
	if a := dec.Annotations(); len(a) > 0 {
		resp.AuditAnnotations = make(map[string]string, len(a))
		for k, v := range a {
			resp.AuditAnnotations[strings.TrimPrefix(k, "ward.dev/")] = v
		}
	}
	return resp
}

// logDecision logs one line per decision: denials and decisions with
// warn- or audit-mode failures at info level (audit mode is only logged),
// plain admissions at debug level (V(1)).
func (w *Webhook) logDecision(req *review.Request, dec *Decision, resp *review.Response, elapsed time.Duration) {
	if dec != nil && len(dec.Failures) == 0 && !w.log.V(1).Enabled() {
		return // a plain admission, and debug logs are off: nothing to build
	}
	kv := []any{"kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "uid", req.UID, "operation", req.Operation,
		"allowed", resp.Allowed, "duration", elapsed.Round(time.Microsecond).String()}
	if dec == nil {
		if resp.Result != nil && resp.Result.Code >= 400 {
			w.log.Info("request not decided", append(kv, "code", resp.Result.Code, "error", resp.Result.Message)...)
		}
		return
	}
	kv = append(kv, "images", len(dec.Images), "policies", strings.Join(dec.Policies, ","), "bundles", bundleLabels(dec.Bundles))
	if len(dec.Failures) == 0 {
		w.log.V(1).Info("allowed", kv...)
		return
	}
	listed := make([]string, 0, min(len(dec.Failures), MaxListedFailures))
	for _, f := range dec.Failures[:min(len(dec.Failures), MaxListedFailures)] {
		listed = append(listed, string(f.Mode)+": "+f.String())
	}
	kv = append(kv, "failures", len(dec.Failures), "listed", listed)
	if !resp.Allowed {
		w.log.Info("denied", append(kv, "message", resp.Result.Message)...)
		return
	}
	w.log.Info("allowed with failures of warn or audit policies", kv...)
}

// unpinned lists the images under enforce-mode policies given by tag.
func (w *Webhook) unpinned(dec *Decision) []string {
	if w.allowTags {
		return nil
	}
	var out []string
	for _, im := range dec.Images {
		if im.Mode == policies.ModeEnforce && !im.ByDigest {
			out = append(out, "image "+im.Image+" is")
		}
	}
	return out
}

func (w *Webhook) mutate(dec *Decision) review.Response {
	if !dec.Allowed || len(dec.Patches) == 0 {
		return review.Allowed()
	}
	patch, err := json.Marshal(dec.Patches)
	if err != nil {
		return review.Errored(http.StatusInternalServerError, fmt.Errorf("failed to encode the patch: %w", err))
	}
	resp := review.Allowed()
	resp.Result.Message = "images pinned to their verified digests"
	resp.Patch, resp.PatchType = patch, review.PatchTypeJSONPatch
	return resp
}
