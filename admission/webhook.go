package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

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

// handler decides, lets respond turn the decision into a response, and
// records the outcome; requests with nothing to decide are answered
// directly.
func (w *Webhook) handler(name string, respond func(ctrladmission.Request, *Decision) ctrladmission.Response) http.Handler {
	return &ctrladmission.Webhook{RecoverPanic: ptr(true), Handler: ctrladmission.HandlerFunc(func(ctx context.Context, req ctrladmission.Request) ctrladmission.Response {
		start := time.Now()
		dec, resp := w.decide(ctx, req)
		if resp == nil {
			r := respond(req, dec)
			resp = &r
		}
		elapsed := time.Since(start)
		w.metrics.observe(name, outcomeOf(dec, resp), elapsed)
		if name == "validate" { // the mutating call repeats the same decision
			w.logDecision(req, dec, resp, elapsed)
			if dec != nil {
				w.metrics.observePolicies(req.Namespace, req.Kind.Kind, dec, dec.modes)
			}
		}
		return *resp
	})}
}

func ptr[T any](v T) *T { return &v }

// decide runs a decision for an admission request, or returns the
// response itself when there is nothing to decide (a deletion, a kind
// without Pods) or the request cannot be decided (bad input).
func (w *Webhook) decide(ctx context.Context, req ctrladmission.Request) (dec *Decision, resp *ctrladmission.Response) {
	kind := req.Kind.Kind
	if req.UID == "" && kind == "" {
		r := ctrladmission.Errored(http.StatusBadRequest, errors.New("the AdmissionReview has no request"))
		return nil, &r
	}
	if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect || !workload.Supported(kind) || len(req.Object.Raw) == 0 {
		r := ctrladmission.Allowed("")
		return nil, &r
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	st := w.policies.Load()
	userInfo := map[string]any{"username": req.UserInfo.Username, "groups": toAny(req.UserInfo.Groups)}
	dec, err := w.decider.Decide(ctx, st, Request{
		Kind: kind, Namespace: req.Namespace, Name: req.Name, Operation: string(req.Operation),
		Object: req.Object.Raw, OldObject: req.OldObject.Raw, UserInfo: userInfo,
	})
	if err != nil {
		code := int32(http.StatusInternalServerError)
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		}
		r := ctrladmission.Errored(code, err)
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

func (w *Webhook) validate(req ctrladmission.Request, dec *Decision) ctrladmission.Response {
	var resp ctrladmission.Response
	switch unpinned := w.unpinned(dec); {
	case !dec.Allowed:
		resp = ctrladmission.Denied(dec.Message())
	case len(unpinned) > 0:
		resp = ctrladmission.Denied(fmt.Sprintf("ward denied the request (%s): %s verified but not pinned to a digest, so the tag could be moved after this check; ward's mutating webhook pins verified images (is it installed?), or give the image by digest",
			bundleLabels(dec.Bundles), strings.Join(unpinned, ", ")))
	default:
		resp = ctrladmission.Allowed("")
	}
	resp = resp.WithWarnings(dec.Warnings()...)
	resp.AuditAnnotations = map[string]string{}
	for k, v := range dec.Annotations() {
		resp.AuditAnnotations[strings.TrimPrefix(k, "ward.dev/")] = v
	}
	return resp
}

// logDecision logs one line per decision: denials and decisions with
// warn- or audit-mode failures at info level (audit mode is only logged),
// plain admissions at debug level (V(1)).
func (w *Webhook) logDecision(req ctrladmission.Request, dec *Decision, resp *ctrladmission.Response, elapsed time.Duration) {
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

func (w *Webhook) mutate(_ ctrladmission.Request, dec *Decision) ctrladmission.Response {
	if !dec.Allowed || len(dec.Patches) == 0 {
		return ctrladmission.Allowed("")
	}
	ops := make([]jsonpatch.JsonPatchOperation, len(dec.Patches))
	for i, p := range dec.Patches {
		ops[i] = jsonpatch.JsonPatchOperation{Operation: p.Op, Path: p.Path, Value: p.Value}
	}
	return ctrladmission.Patched("images pinned to their verified digests", ops...)
}
