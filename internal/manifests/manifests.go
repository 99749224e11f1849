// Package manifests reads Kubernetes manifests from files, folders and
// stdin for the offline commands (`ward check`, `ward test`): multi-document
// YAML or JSON, `kind: List` expanded, each object kept as JSON.
package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxFileBytes bounds each manifest file read.
const MaxFileBytes = 16 << 20

// Object is one Kubernetes object from a manifest.
type Object struct {
	// Source is "file:document" for messages.
	Source     string
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	Labels     map[string]string
	// Raw is the object as JSON.
	Raw []byte
}

// ID is "Kind namespace/name" (or "Kind name").
func (o Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Read reads every object from the paths: files, folders (their *.yaml,
// *.yml and *.json files, recursively) or "-" for stdin.
func Read(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			data, err := ReadAll(stdin, "stdin")
			if err != nil {
				return nil, err
			}
			objs, err := Parse("stdin", data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("failed to read manifests: %w", err)
		}
		files := []string{p}
		if info.IsDir() {
			files = nil
			err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != p {
					return filepath.SkipDir
				}
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
					if d.Type().IsRegular() {
						files = append(files, path)
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("failed to read manifests in %s: %w", p, err)
			}
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, fmt.Errorf("failed to read manifests: %w", err)
			}
			data, err := ReadAll(fh, f)
			fh.Close()
			if err != nil {
				return nil, err
			}
			objs, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

// ReadAll reads at most MaxFileBytes from r (named name in errors).
func ReadAll(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("failed to read %s: over the limit of %d bytes", name, MaxFileBytes)
	}
	return data, nil
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

// Parse reads the objects of one multi-document YAML or JSON file.
func Parse(name string, data []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, n, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: not YAML: %s", name, n, oneLine(err))
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			n--
			continue
		}
		objs, err := object(fmt.Sprintf("%s:%d", name, n), js)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, n, err)
		}
		out = append(out, objs...)
	}
}

func object(source string, js []byte) ([]Object, error) {
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %s", oneLine(err))
	}
	if h.Kind == "" {
		return nil, fmt.Errorf("no kind")
	}
	if strings.HasSuffix(h.Kind, "List") && h.Items != nil {
		var out []Object
		for i, item := range h.Items {
			objs, err := object(fmt.Sprintf("%s[%d]", source, i), item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	name := h.Metadata.Name
	if name == "" {
		name = h.Metadata.GenerateName
	}
	return []Object{{Source: source, APIVersion: h.APIVersion, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: name, Labels: h.Metadata.Labels, Raw: js}}, nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
