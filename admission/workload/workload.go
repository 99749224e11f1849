// Package workload finds the container images in an admitted object: a Pod
// or any object with a Pod template (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob, ReplicationController), across containers,
// initContainers and ephemeralContainers. It decodes only the fields a
// decision needs.
package workload

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"ward.dev/ward/internal/jsonscan"
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
	ImagePullSecrets    []localRef  `json:"imagePullSecrets"`
	ServiceAccountName  string      `json:"serviceAccountName"`
}

// Fields are the fields of an admitted object that a decision reads, for
// every supported kind at once: the object's metadata and its Pod spec at
// any kind's path. Read an object into Fields with Scan, then Workload
// picks the Pod spec at the kind's path. (The json tags say how a
// general JSON decoder would read the same fields: the fuzz tests compare
// Scan with one.)
type Fields struct {
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
	JobTemplate *jobTemplate `json:"jobTemplate"`
}

type jobTemplate struct {
	Spec *jobSpec `json:"spec"`
}

type jobSpec struct {
	Template *podTemplate `json:"template"`
}

// localRef names an object in the same namespace.
type localRef struct {
	Name string `json:"name"`
}

type podTemplate struct {
	Spec *podSpec `json:"spec"`
}

// podSpec returns the pod spec at kind's path, nil where there is none.
func (f *Fields) podSpec(kind string) *podSpec {
	s := f.Spec
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
	if !Supported(kind) {
		return nil, unsupported(kind)
	}
	var top Fields
	s := jsonscan.New(raw)
	if err := top.Scan(s); err != nil {
		return nil, fmt.Errorf("failed to decode %s: %w", kind, err)
	}
	if err := s.End(); err != nil {
		return nil, fmt.Errorf("failed to decode %s: %w", kind, err)
	}
	return top.Workload(kind)
}

func unsupported(kind string) error {
	return fmt.Errorf("%w %q: want one of Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController", ErrUnsupportedKind, kind)
}

// Workload is what a decision needs from the decoded object, read as the
// given kind.
func (f *Fields) Workload(kind string) (*Workload, error) {
	path, ok := podSpecPath[kind]
	if !ok {
		return nil, unsupported(kind)
	}
	var spec podSpec
	if p := f.podSpec(kind); p != nil {
		spec = *p
	}
	name := f.Metadata.Name
	if name == "" {
		name = f.Metadata.GenerateName
	}
	w := &Workload{Kind: kind, Name: name, Namespace: f.Metadata.Namespace, APIVersion: f.APIVersion, Labels: f.Metadata.Labels,
		ServiceAccount: spec.ServiceAccountName}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	prefix := "/" + strings.Join(path, "/")
	w.Containers = make([]Container, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for _, l := range []struct {
		field string
		list  []container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}, {"ephemeralContainers", spec.EphemeralContainers}} {
		for i, c := range l.list {
			w.Containers = append(w.Containers, Container{
				Field: l.field, Index: i, Name: c.Name, Image: c.Image,
				Path: prefix + "/" + l.field + "/" + strconv.Itoa(i) + "/image",
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

// Scan reads an object from s into f: its fields a decision reads are
// decoded and the rest only checked, in one pass. A name given twice
// among the fields it reads is refused, so that no reader of the object
// sees other images than ward does; names are case-sensitive, as the API
// server reads them.
func (f *Fields) Scan(s *jsonscan.Scanner) error {
	var seen jsonscan.Names
	return s.Object(func(name []byte) (err error) {
		switch string(name) {
		case "apiVersion":
			return seen.Read(0, name, func() error { f.APIVersion, err = s.OptString(); return err })
		case "metadata":
			return seen.Read(1, name, func() error { return f.Metadata.scan(s) })
		case "spec":
			return seen.Read(2, name, func() error {
				if null, err := s.Null(); null || err != nil {
					f.Spec = nil
					return err
				}
				f.Spec = &objectSpec{}
				return f.Spec.scan(s)
			})
		}
		return s.Skip()
	})
}

func (m *metadata) scan(s *jsonscan.Scanner) error {
	*m = metadata{}
	var seen jsonscan.Names
	return s.OptObject(func(name []byte) (err error) {
		switch string(name) {
		case "name":
			return seen.Read(0, name, func() error { m.Name, err = s.OptString(); return err })
		case "generateName":
			return seen.Read(1, name, func() error { m.GenerateName, err = s.OptString(); return err })
		case "namespace":
			return seen.Read(2, name, func() error { m.Namespace, err = s.OptString(); return err })
		case "labels":
			return seen.Read(3, name, func() error {
				m.Labels = nil
				if null, err := s.Null(); null || err != nil {
					return err
				}
				m.Labels = map[string]string{}
				return s.Object(func(key []byte) error {
					if _, dup := m.Labels[string(key)]; dup {
						return fmt.Errorf("%w: duplicate label %q", jsonscan.ErrSyntax, key)
					}
					k := string(key)
					v, err := s.OptString()
					m.Labels[k] = v
					return err
				})
			})
		}
		return s.Skip()
	})
}

func (o *objectSpec) scan(s *jsonscan.Scanner) error {
	var seen jsonscan.Names
	return s.Object(func(name []byte) error {
		switch string(name) {
		case "template":
			return seen.Read(10, name, func() (err error) { o.Template, err = scanTemplate(s); return err })
		case "jobTemplate":
			return seen.Read(11, name, func() error {
				if null, err := s.Null(); null || err != nil {
					o.JobTemplate = nil
					return err
				}
				o.JobTemplate = &jobTemplate{}
				var seen jsonscan.Names
				return s.Object(func(name []byte) error {
					if string(name) != "spec" {
						return s.Skip()
					}
					return seen.Read(0, name, func() error {
						if null, err := s.Null(); null || err != nil {
							o.JobTemplate.Spec = nil
							return err
						}
						o.JobTemplate.Spec = &jobSpec{}
						var seen jsonscan.Names
						return s.Object(func(name []byte) error {
							if string(name) != "template" {
								return s.Skip()
							}
							return seen.Read(0, name, func() (err error) { o.JobTemplate.Spec.Template, err = scanTemplate(s); return err })
						})
					})
				})
			})
		}
		return o.podSpec.member(s, &seen, name)
	})
}

func scanTemplate(s *jsonscan.Scanner) (*podTemplate, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	t := &podTemplate{}
	var seen jsonscan.Names
	return t, s.Object(func(name []byte) error {
		if string(name) != "spec" {
			return s.Skip()
		}
		return seen.Read(0, name, func() error {
			if null, err := s.Null(); null || err != nil {
				t.Spec = nil
				return err
			}
			t.Spec = &podSpec{}
			var seen jsonscan.Names
			return s.Object(func(name []byte) error { return t.Spec.member(s, &seen, name) })
		})
	})
}

// member reads one member of a Pod spec, skipping the fields it does not
// keep; bits 0–4 of seen are its own.
func (p *podSpec) member(s *jsonscan.Scanner, seen *jsonscan.Names, name []byte) error {
	switch string(name) {
	case "containers":
		return seen.Read(0, name, func() (err error) { p.Containers, err = scanContainers(s); return err })
	case "initContainers":
		return seen.Read(1, name, func() (err error) { p.InitContainers, err = scanContainers(s); return err })
	case "ephemeralContainers":
		return seen.Read(2, name, func() (err error) { p.EphemeralContainers, err = scanContainers(s); return err })
	case "imagePullSecrets":
		return seen.Read(3, name, func() (err error) { p.ImagePullSecrets, err = scanNames(s); return err })
	case "serviceAccountName":
		return seen.Read(4, name, func() (err error) { p.ServiceAccountName, err = s.OptString(); return err })
	}
	return s.Skip()
}

// scanContainers reads a list of containers, keeping name and image.
func scanContainers(s *jsonscan.Scanner) ([]container, error) {
	return scanList(s, func(c *container, seen *jsonscan.Names, name []byte) (err error) {
		switch string(name) {
		case "name":
			return seen.Read(0, name, func() error { c.Name, err = s.OptString(); return err })
		case "image":
			return seen.Read(1, name, func() error { c.Image, err = s.OptString(); return err })
		}
		return s.Skip()
	})
}

// scanNames reads a list of local object references, keeping their name.
func scanNames(s *jsonscan.Scanner) ([]localRef, error) {
	return scanList(s, func(r *localRef, seen *jsonscan.Names, name []byte) (err error) {
		if string(name) != "name" {
			return s.Skip()
		}
		return seen.Read(0, name, func() error { r.Name, err = s.OptString(); return err })
	})
}

// scanList reads a list of objects (null: none), each with member; a null
// element is a zero one.
func scanList[T any](s *jsonscan.Scanner, member func(e *T, seen *jsonscan.Names, name []byte) error) ([]T, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	out := []T{}
	err := s.Array(func() error {
		var e T
		var seen jsonscan.Names
		err := s.OptObject(func(name []byte) error { return member(&e, &seen, name) })
		out = append(out, e)
		return err
	})
	return out, err
}
