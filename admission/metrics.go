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

func outcomeOf(dec *Decision, early *ctrladmission.Response) string {
	if early != nil {
		if early.Result != nil && early.Result.Code >= 400 {
			return "errored"
		}
		return "skipped"
	}
	switch {
	case !dec.Allowed:
		return "denied"
	case len(dec.Warnings()) > 0:
		return "warned"
	}
	for _, f := range dec.Failures {
		if f.Mode == policies.ModeAudit {
			return "audited"
		}
	}
	return "allowed"
}
