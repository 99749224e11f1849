package syncer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts syncs and swaps as they happen. A nil *Metrics records
// nothing. What each source enforces is not counted here but read from the
// sources at every scrape (see NewMetrics), so that it is true from the
// first moment, a restart from persisted state included.
type Metrics struct {
	syncs    *prometheus.CounterVec
	swaps    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers s's metrics with reg and makes s record its syncs
// in them; call it before Run. The per-source gauges are read from s at
// each scrape.
func NewMetrics(reg prometheus.Registerer, s *Syncer) *Metrics {
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
	}
	reg.MustRegister(m.syncs, m.swaps, m.duration, stateCollector{s})
	s.metrics = m
	return m
}

func (m *Metrics) sync(source, failure string, d time.Duration, swapped bool) {
	if m == nil {
		return
	}
	result := "success"
	if failure != "" {
		result = failure
	}
	m.syncs.WithLabelValues(source, result).Inc()
	m.duration.WithLabelValues(source).Observe(d.Seconds())
	if swapped {
		m.swaps.WithLabelValues(source).Inc()
	}
}

// The per-source gauges, projected from Statuses at each scrape.
var (
	descReady = prometheus.NewDesc("ward_source_ready",
		"1 while the source is Ready: enforcing an unexpired bundle under its newest spec, last sync succeeded.", []string{"source"}, nil)
	descState = prometheus.NewDesc("ward_source_state",
		"1 for the state the source is in (pending, enforcing, \"enforcing, expired\", deny-all), 0 for the others.", []string{"source", "state"}, nil)
	descVersion = prometheus.NewDesc("ward_bundle_version",
		"Version of the last verified bundle of each source (not enforced while the state is deny-all).", []string{"source", "env"}, nil)
	descApplied = prometheus.NewDesc("ward_bundle_applied_timestamp_seconds",
		"When each source's bundle was swapped in (or served again after a restart).", []string{"source"}, nil)
	descTrust = prometheus.NewDesc("ward_trusted_metadata_expiry_seconds",
		"Seconds until the earliest expiry of the metadata that vouches for each source's bundle (negative once expired).", []string{"source"}, nil)
)

var states = []string{StatePending, StateEnforcing, StateExpired, StateDenyAll}

type stateCollector struct{ s *Syncer }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReady, descState, descVersion, descApplied, descTrust} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.s.now()
	for _, st := range c.s.Statuses() {
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(st.Ready), st.Name)
		for _, name := range states {
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, b2f(st.State == name), st.Name, name)
		}
		if a := st.Applied; a != nil {
			ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(a.Version), st.Name, a.Env)
			ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(a.AppliedAt.Unix()), st.Name)
			if !a.TrustUntil.IsZero() {
				ch <- prometheus.MustNewConstMetric(descTrust, prometheus.GaugeValue, a.TrustUntil.Sub(now).Seconds(), st.Name)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
