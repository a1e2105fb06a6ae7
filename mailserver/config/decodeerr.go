package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	kjson "sigs.k8s.io/json"
)

// valueError names the field of a decode error that the decoder reports without one: a value
// its type's own UnmarshalJSON refuses (a metav1.Time that is not RFC 3339, a
// resource.Quantity that is not one) comes back as that type's bare error ("parsing time
// "tomorrow" ..."), where a type mismatch or an unknown field names its path. It decodes the
// document's fields one by one into their types to find the deepest one that fails, and
// returns "PATH: invalid value VALUE: ERR", the path as the CRD's ("spec.autoReply.start");
// nil when no single field is at fault or the error names it already (the error is then the
// decoder's, as it was).
func valueError(js []byte, target any, err error) error {
	var doc any
	if json.Unmarshal(js, &doc) != nil {
		return nil
	}
	path, value := failingField(doc, reflect.TypeOf(target), "")
	if path == "" || strings.Contains(err.Error(), path) {
		return nil // a type mismatch: the decoder named the field
	}
	return fmt.Errorf("%s: invalid value %s: %w", path, value, err)
}

// failingField returns the path and JSON value of the deepest field of v (decoded as any) that
// does not decode into t, "" if every field does.
func failingField(v any, t reflect.Type, path string) (string, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", ""
		}
		return failingStructField(obj, t, path)
	case reflect.Slice, reflect.Array:
		items, ok := v.([]any)
		if !ok {
			return "", ""
		}
		for i, item := range items {
			if p, val := failingChild(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p, val
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return "", ""
		}
		for k, item := range obj {
			if p, val := failingChild(item, t.Elem(), join(path, k)); p != "" {
				return p, val
			}
		}
	}
	return "", ""
}

func failingStructField(obj map[string]any, t reflect.Type, path string) (string, string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" && (f.Anonymous || strings.Contains(opts, "inline")) {
			// Embedded or inline (TypeMeta): its fields are the object's own.
			if p, val := failingField(obj, f.Type, path); p != "" {
				return p, val
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		item, present := obj[name]
		if !present {
			continue
		}
		if p, val := failingChild(item, f.Type, join(path, name)); p != "" {
			return p, val
		}
	}
	return "", ""
}

// failingChild decodes v into a new t: if that fails, the fault is v's or one of its fields'.
func failingChild(v any, t reflect.Type, path string) (string, string) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", ""
	}
	if kjson.UnmarshalCaseSensitivePreserveInts(b, reflect.New(t).Interface()) == nil {
		return "", ""
	}
	if p, val := failingField(v, t, path); p != "" {
		return p, val
	}
	return path, string(b)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
