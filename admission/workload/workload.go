// Package workload finds the container images in an admitted object: a Pod
// or any object with a Pod template (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob, ReplicationController), across containers,
// initContainers and ephemeralContainers. It decodes only the fields a
// decision needs.
package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupportedKind is returned for a kind that carries no Pod spec.
var ErrUnsupportedKind = errors.New("unsupported kind")

// Container is one container's image and where it sits in the object.
type Container struct {
	// Field is containers, initContainers or ephemeralContainers.
	Field string
	Index int
	Name  string
	Image string
	// Path is the JSON pointer of the image field, for patches.
	Path string
}

// Workload is what a decision needs from an admitted object.
type Workload struct {
	Kind      string
	Name      string
	Namespace string
	// APIVersion is the object's apiVersion ("apps/v1"), when it says.
	APIVersion string
	// Labels are the object's own labels (not its Pod template's).
	Labels map[string]string
	// Containers in spec order: init containers, containers, ephemeral.
	Containers []Container
	// PullSecrets are the names of the Pod's image pull secrets.
	PullSecrets []string
	// ServiceAccount is the Pod's service account ("default" if unset).
	ServiceAccount string
}

// Images returns the distinct images of the workload in order.
func (w *Workload) Images() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range w.Containers {
		if !seen[c.Image] {
			seen[c.Image] = true
			out = append(out, c.Image)
		}
	}
	return out
}

// podSpecPath is where each kind keeps its Pod spec, as JSON pointer
// segments.
var podSpecPath = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// Supported reports whether the kind carries a Pod spec.
func Supported(kind string) bool { _, ok := podSpecPath[kind]; return ok }

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

type podSpec struct {
	Containers          []container `json:"containers"`
	InitContainers      []container `json:"initContainers"`
	EphemeralContainers []container `json:"ephemeralContainers"`
	ImagePullSecrets    []struct {
		Name string `json:"name"`
	} `json:"imagePullSecrets"`
	ServiceAccountName string `json:"serviceAccountName"`
}

// object is a workload with its pod spec at any of the kinds' paths.
type object struct {
	APIVersion string      `json:"apiVersion"`
	Metadata   metadata    `json:"metadata"`
	Spec       *objectSpec `json:"spec"`
}

// objectSpec holds a Pod's spec, a template's (Deployment, ReplicaSet,
// StatefulSet, DaemonSet, Job, ReplicationController) and a job
// template's (CronJob).
type objectSpec struct {
	podSpec
	Template    *podTemplate `json:"template"`
	JobTemplate *struct {
		Spec *struct {
			Template *podTemplate `json:"template"`
		} `json:"spec"`
	} `json:"jobTemplate"`
}

type podTemplate struct {
	Spec *podSpec `json:"spec"`
}

// podSpec returns the pod spec at kind's path, nil where there is none.
func (o *object) podSpec(kind string) *podSpec {
	s := o.Spec
	switch {
	case s == nil:
		return nil
	case kind == "Pod":
		return &s.podSpec
	case kind == "CronJob":
		if s.JobTemplate == nil || s.JobTemplate.Spec == nil || s.JobTemplate.Spec.Template == nil {
			return nil
		}
		return s.JobTemplate.Spec.Template.Spec
	case s.Template == nil:
		return nil
	default:
		return s.Template.Spec
	}
}

type metadata struct {
	Name         string            `json:"name"`
	GenerateName string            `json:"generateName"`
	Namespace    string            `json:"namespace"`
	Labels       map[string]string `json:"labels"`
}

// Extract decodes the Pod spec of an object of the given kind. Fields
// other than the Pod spec's containers, pull secrets and service account
// are skipped, not decoded.
func Extract(kind string, raw []byte) (*Workload, error) {
	path, ok := podSpecPath[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q: want one of Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController", ErrUnsupportedKind, kind)
	}
	// One decoding pass over the object, straight into the pod spec at
	// kind's path: the request's other fields (managedFields, status, the
	// rest of the spec) are skipped once, not scanned again per level.
	var top object
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("failed to decode %s: %w", kind, err)
	}
	var spec podSpec
	if p := top.podSpec(kind); p != nil {
		spec = *p
	}
	name := top.Metadata.Name
	if name == "" {
		name = top.Metadata.GenerateName
	}
	w := &Workload{Kind: kind, Name: name, Namespace: top.Metadata.Namespace, APIVersion: top.APIVersion, Labels: top.Metadata.Labels,
		ServiceAccount: spec.ServiceAccountName}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	prefix := "/" + strings.Join(path, "/")
	for _, f := range []struct {
		field string
		list  []container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}, {"ephemeralContainers", spec.EphemeralContainers}} {
		for i, c := range f.list {
			w.Containers = append(w.Containers, Container{
				Field: f.field, Index: i, Name: c.Name, Image: c.Image,
				Path: fmt.Sprintf("%s/%s/%d/image", prefix, f.field, i),
			})
		}
	}
	for _, s := range spec.ImagePullSecrets {
		if s.Name != "" {
			w.PullSecrets = append(w.PullSecrets, s.Name)
		}
	}
	return w, nil
}
