package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"ward.dev/ward/policies"
)

// Metrics counts decisions. A nil *Metrics records nothing.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// NewMetrics registers ward's admission metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_admission_decisions_total",
			Help: "Admission decisions by webhook and outcome (allowed, denied, warned, audited, errored, skipped).",
		}, []string{"webhook", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ward_admission_decision_seconds",
			Help:    "Time to decide an admission request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"webhook"}),
	}
	reg.MustRegister(m.decisions, m.duration)
	return m
}

func (m *Metrics) observe(webhook, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(webhook, outcome).Inc()
	m.duration.WithLabelValues(webhook).Observe(d.Seconds())
}

// outcomeOf names what happened to a request: the response, and the
// decision behind it when there was one (/mutate admits what it does not
// pin; its decision says denied).
func outcomeOf(dec *Decision, resp *ctrladmission.Response) string {
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
