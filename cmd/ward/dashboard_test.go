package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"ward.dev/ward/admission"
	"ward.dev/ward/sync/syncer"
)

// Every query of the Grafana dashboard names metrics ward exports (with a
// histogram's _bucket, _sum and _count), so a renamed metric cannot leave
// a panel silently empty.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	// As ward serve wires them: the decider registers its cache's size.
	admission.NewDecider(nil, admission.WithDeciderMetrics(admission.NewMetrics(reg)))
	syn, err := syncer.New(nil, t.TempDir(), &admission.Policies{})
	if err != nil {
		t.Fatal(err)
	}
	syncer.NewMetrics(reg, syn)
	exported := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	go func() { reg.Describe(descs); close(descs) }()
	nameRE := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		if m := nameRE.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				exported[m[1]+suffix] = true
			}
		}
	}
	if !exported["ward_source_ready"] || !exported["ward_admission_decisions_total"] {
		t.Fatalf("metrics found: %v", exported)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "chart", "ward", "dashboards", "ward-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	metricRE := regexp.MustCompile(`\bward_[a-z_]+`)
	queries := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			names := metricRE.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no ward metric", p.Title, q.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: %s is not a metric ward exports (query %s)", p.Title, n, strings.TrimSpace(q.Expr))
				}
			}
		}
	}
	if queries < 10 {
		t.Fatalf("%d queries", queries)
	}
}
