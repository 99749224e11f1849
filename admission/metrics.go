package admission

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/admission/review"
	"ward.dev/ward/policies"
)

// Metrics counts decisions, policy results, signature verifications and
// verification cache lookups. A nil *Metrics records nothing. Labels are
// bounded: no image names or digests.
type Metrics struct {
	reg            prometheus.Registerer
	decisions      *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	policyResults  *prometheus.CounterVec
	verifyDuration *prometheus.HistogramVec
	registryErrors *prometheus.CounterVec
	cacheLookups   *prometheus.CounterVec
}

// NewMetrics registers ward's admission metrics with reg. Pass the result
// to the Webhook (WithMetrics) and the Decider (WithDeciderMetrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_admission_decisions_total",
			Help: "Admission decisions by webhook and outcome (allowed, denied, warned, audited, errored, skipped).",
		}, []string{"webhook", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_admission_decision_seconds", Help: "Time to decide an admission request.", Buckets: latency,
		}, []string{"webhook"}),
		policyResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_policy_results_total",
			Help: "Results of each policy that took part in a validating decision, by namespace, kind, mode and result (pass or fail).",
		}, []string{"policy", "namespace", "kind", "mode", "result"}),
		verifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ward_signature_verification_seconds",
			Help:    "Time of one signature verification against a registry (cache misses only), by registry and result (verified, refused, error).",
			Buckets: latency,
		}, []string{"registry", "result"}),
		registryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_registry_errors_total", Help: "Registry requests that failed (unreachable, 5xx, timeouts), by registry.",
		}, []string{"registry"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_verification_cache_lookups_total", Help: "Verification cache lookups by result (hit or miss).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.decisions, m.duration, m.policyResults, m.verifyDuration, m.registryErrors, m.cacheLookups)
	return m
}

func (m *Metrics) observe(webhook, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(webhook, outcome).Inc()
	m.duration.WithLabelValues(webhook).Observe(d.Seconds())
}

// observePolicies counts each policy of a decision as passed or failed.
func (m *Metrics) observePolicies(namespace, kind string, dec *Decision, modes map[string]policies.Mode) {
	if m == nil || dec == nil {
		return
	}
	failed := map[string]bool{}
	for _, f := range dec.Failures {
		for _, p := range strings.Split(f.Policy, ",") {
			failed[p] = true
		}
	}
	for _, p := range dec.Policies {
		result := "pass"
		if failed[p] {
			result = "fail"
		}
		m.policyResults.WithLabelValues(p, namespace, kind, string(modes[p]), result).Inc()
	}
}

// observeVerify records one verification against a registry.
func (m *Metrics) observeVerify(registry string, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "verified"
	switch {
	case isRegistryTrouble(err):
		result = "error"
		m.registryErrors.WithLabelValues(registry).Inc()
	case err != nil:
		result = "refused"
	}
	m.verifyDuration.WithLabelValues(registry, result).Observe(d.Seconds())
}

// observeRegistryError counts a failed registry request outside a
// verification (resolving a tag).
func (m *Metrics) observeRegistryError(registry string, err error) {
	if m != nil && isRegistryTrouble(err) {
		m.registryErrors.WithLabelValues(registry).Inc()
	}
}

func isRegistryTrouble(err error) bool {
	return err != nil && (errors.Is(err, imageverify.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded))
}

func (m *Metrics) observeCache(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheLookups.WithLabelValues("hit").Inc()
	} else {
		m.cacheLookups.WithLabelValues("miss").Inc()
	}
}

// watchCache reports c's size as ward_verification_cache_entries.
func (m *Metrics) watchCache(c *Cache) {
	if m == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ward_verification_cache_entries", Help: "Entries in the verification cache (results and tag resolutions).",
	}, func() float64 { return float64(c.size()) })
	if err := m.reg.Register(g); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		panic(err) // a programming error: another metric of that name
	}
}

// outcomeOf names what happened to a request: the response, and the
// decision behind it when there was one (/mutate admits what it does not
// pin; its decision says denied).
func outcomeOf(dec *Decision, resp *review.Response) string {
	switch {
	case dec == nil && resp.Result != nil && resp.Result.Code >= 400:
		return "errored" // undecodable: no decision was made
	case dec == nil:
		return "skipped"
	case !resp.Allowed || !dec.Allowed:
		return "denied"
	case len(resp.Warnings) > 0:
		return "warned"
	}
	for _, f := range dec.Failures {
		if f.Mode == policies.ModeAudit {
			return "audited"
		}
	}
	return "allowed"
}
