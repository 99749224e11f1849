package syncer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts syncs, swaps and refusals. A nil *Metrics records nothing.
type Metrics struct {
	syncs    *prometheus.CounterVec
	swaps    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	version  *prometheus.GaugeVec
	applied  *prometheus.GaugeVec
}

// NewMetrics registers the sync metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_sync_total", Help: "Syncs by source and result (success or the failure reason).",
		}, []string{"source", "result"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_policy_swaps_total", Help: "Policy sets swapped into the webhook, by source.",
		}, []string{"source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_sync_duration_seconds", Help: "Time of one sync: fetch, verify, unpack, compile.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"source"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ward_bundle_version", Help: "Version of the bundle each source enforces.",
		}, []string{"source", "env"}),
		applied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ward_bundle_applied_timestamp_seconds", Help: "When each source's bundle was swapped in.",
		}, []string{"source"}),
	}
	reg.MustRegister(m.syncs, m.swaps, m.duration, m.version, m.applied)
	return m
}

func (m *Metrics) sync(source, failure string, d time.Duration, swapped bool, a *Applied) {
	if m == nil {
		return
	}
	result := "success"
	if failure != "" {
		result = failure
	}
	m.syncs.WithLabelValues(source, result).Inc()
	m.duration.WithLabelValues(source).Observe(d.Seconds())
	if a != nil {
		m.version.WithLabelValues(source, a.Env).Set(float64(a.Version))
	}
	if swapped {
		m.swaps.WithLabelValues(source).Inc()
		m.applied.WithLabelValues(source).Set(float64(a.AppliedAt.Unix()))
	}
}
