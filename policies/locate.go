package policies

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// unknownField finds the first mapping key of a YAML document that is no
// field of t (matched as encoding/json matches: by JSON name, exactly or
// ignoring case), and returns its path ("spec.authorities[0].kye") and its
// line in the document. It is how a strict decode's "unknown field" error
// is turned into one that names where the field is.
func unknownField(raw []byte, t reflect.Type) (string, int, bool) {
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil || n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return "", 0, false
	}
	return walkUnknown(n.Content[0], t, "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func walkUnknown(n *yaml.Node, t reflect.Type, path string) (string, int, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return "", 0, false // decoded its own way
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return "", 0, false
		}
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinField(path, k.Value)
			ft, ok := lookupField(fields, k.Value)
			if !ok {
				return p, k.Line, true
			}
			if f, l, ok := walkUnknown(v, ft, p); ok {
				return f, l, true
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return "", 0, false
		}
		for i, c := range n.Content {
			if f, l, ok := walkUnknown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
				return f, l, true
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return "", 0, false
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, l, ok := walkUnknown(n.Content[i+1], t.Elem(), joinField(path, n.Content[i].Value)); ok {
				return f, l, true
			}
		}
	}
	return "", 0, false
}

// jsonFields maps a struct's JSON field names to their types, embedded and
// inline structs flattened.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if (f.Anonymous && name == "") || strings.Contains(","+opts+",", ",inline,") {
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func lookupField(fields map[string]reflect.Type, key string) (reflect.Type, bool) {
	if t, ok := fields[key]; ok {
		return t, true
	}
	for name, t := range fields {
		if strings.EqualFold(name, key) {
			return t, true
		}
	}
	return nil, false
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
