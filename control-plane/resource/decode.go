package resource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/admission"
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
)

// DefaultNamespace is given to objects that name none, as kubectl does.
const DefaultNamespace = "default"

// kindSpec says how to decode and store one kind.
type kindSpec struct {
	newObj func() client.Object
	add    func(*Resources, client.Object)
}

// kinds lists every kind the control plane reads, by "apiVersion/kind".
var kinds = map[string]kindSpec{
	"gateway.networking.k8s.io/v1/GatewayClass": {newObj: func() client.Object { return &gwapiv1.GatewayClass{} },
		add: func(r *Resources, o client.Object) {
			r.GatewayClasses = append(r.GatewayClasses, o.(*gwapiv1.GatewayClass))
		}},
	"gateway.networking.k8s.io/v1/Gateway": {newObj: func() client.Object { return &gwapiv1.Gateway{} },
		add: func(r *Resources, o client.Object) { r.Gateways = append(r.Gateways, o.(*gwapiv1.Gateway)) }},
	"gateway.networking.k8s.io/v1/HTTPRoute": {newObj: func() client.Object { return &gwapiv1.HTTPRoute{} },
		add: func(r *Resources, o client.Object) { r.HTTPRoutes = append(r.HTTPRoutes, o.(*gwapiv1.HTTPRoute)) }},
	"gateway.networking.k8s.io/v1/GRPCRoute": {newObj: func() client.Object { return &gwapiv1.GRPCRoute{} },
		add: func(r *Resources, o client.Object) { r.GRPCRoutes = append(r.GRPCRoutes, o.(*gwapiv1.GRPCRoute)) }},
	"v1/Service": {newObj: func() client.Object { return &corev1.Service{} },
		add: func(r *Resources, o client.Object) { r.Services = append(r.Services, o.(*corev1.Service)) }},
	"discovery.k8s.io/v1/EndpointSlice": {newObj: func() client.Object { return &discoveryv1.EndpointSlice{} },
		add: func(r *Resources, o client.Object) {
			r.EndpointSlices = append(r.EndpointSlices, o.(*discoveryv1.EndpointSlice))
		}},
	"mesh.bulkhead.dev/v1alpha1/BackendPolicy": {newObj: func() client.Object { return &v1alpha1.BackendPolicy{} },
		add: func(r *Resources, o client.Object) {
			r.BackendPolicies = append(r.BackendPolicies, o.(*v1alpha1.BackendPolicy))
		}},
	"mesh.bulkhead.dev/v1alpha1/RateLimitPolicy": {newObj: func() client.Object { return &v1alpha1.RateLimitPolicy{} },
		add: func(r *Resources, o client.Object) {
			r.RateLimitPolicies = append(r.RateLimitPolicies, o.(*v1alpha1.RateLimitPolicy))
		}},
	"mesh.bulkhead.dev/v1alpha1/SecurityPolicy": {newObj: func() client.Object { return &v1alpha1.SecurityPolicy{} },
		add: func(r *Resources, o client.Object) {
			r.SecurityPolicies = append(r.SecurityPolicies, o.(*v1alpha1.SecurityPolicy))
		}},
}

// DecodeError is a problem with one document of one file.
type DecodeError struct {
	Origin Origin
	// Object is "Kind namespace/name" when it could be read.
	Object string
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Object != "" {
		return fmt.Sprintf("%s: %s: %v", e.Origin, e.Object, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Origin, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Decode reads the YAML documents of one file into r. Every bad document is
// reported (joined) and skipped; the good ones are added.
func Decode(r *Resources, file string, data []byte) error {
	var errs []error
	for _, doc := range splitDocuments(data) {
		origin := Origin{File: file, Line: doc.line}
		if err := decodeOne(r, origin, doc.body); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func decodeOne(r *Resources, origin Origin, body []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	// YAML is converted to JSON once; the header and the object are both
	// read from the JSON (strictly for the object: unknown fields are errors).
	js, err := yaml.YAMLToJSON(body)
	if err != nil {
		return &DecodeError{Origin: origin, Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
		return nil // an empty document (comments only)
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return &DecodeError{Origin: origin, Err: fmt.Errorf("not a Kubernetes object: %w", err)}
	}
	if head.APIVersion == "" && head.Kind == "" {
		if len(bytes.TrimSpace(stripComments(body))) == 0 {
			return nil // an empty document (comments only)
		}
		return &DecodeError{Origin: origin, Err: errors.New("apiVersion and kind are required")}
	}
	if head.Kind == "List" && head.APIVersion == "v1" {
		return &DecodeError{Origin: origin, Err: errors.New("kind List is not supported: write one document per object, separated by ---")}
	}
	spec, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return &DecodeError{Origin: origin, Err: fmt.Errorf("unsupported apiVersion/kind %s/%s; supported: %s", head.APIVersion, head.Kind, supportedKinds())}
	}
	name := head.Metadata.Name
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	object := fmt.Sprintf("%s %s/%s", head.Kind, ns, name)
	if name == "" {
		return &DecodeError{Origin: origin, Object: head.Kind, Err: errors.New("metadata.name is required")}
	}
	obj := spec.newObj()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return &DecodeError{Origin: origin, Object: object, Err: explainStrictError(body, spec.newObj(), err)}
	}
	// Then policies get the admission checks of their CRD (OpenAPI and CEL), as
	// the API server would apply them in Kubernetes mode.
	if admission.Handles(head.APIVersion, head.Kind) {
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			return &DecodeError{Origin: origin, Object: object, Err: err}
		}
		if errs := admission.Validate(context.Background(), head.APIVersion, head.Kind, m); len(errs) > 0 {
			out := make([]error, 0, len(errs))
			for _, e := range errs {
				out = append(out, &DecodeError{Origin: origin, Object: object, Err: e})
			}
			return errors.Join(out...)
		}
	}
	obj.SetNamespace(ns)
	key := KeyOf(head.Kind, obj)
	if prev, dup := r.origins[key]; dup {
		return &DecodeError{Origin: origin, Object: object, Err: fmt.Errorf("defined twice; first at %s", prev)}
	}
	origin.Generation = obj.GetGeneration()
	r.SetOrigin(key, origin)
	spec.add(r, obj)
	return nil
}

// explainStrictError turns the decoder's error into one that names the
// field by its full path ("unknown field spec.retri", not "retri"): the
// document is decoded leniently, encoded again, and the keys the typed
// object dropped are the unknown ones.
func explainStrictError(body []byte, obj client.Object, strictErr error) error {
	msg := strictErr.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	field, ok := strings.CutPrefix(msg, "unknown field ")
	if !ok {
		return errors.New(msg)
	}
	field = strings.Trim(field, `"`)
	var original map[string]any
	if err := yaml.Unmarshal(body, &original); err != nil {
		return errors.New(msg)
	}
	if err := yaml.Unmarshal(body, obj); err != nil {
		return errors.New(msg)
	}
	rt, err := json.Marshal(obj)
	if err != nil {
		return errors.New(msg)
	}
	var roundTrip map[string]any
	if err := json.Unmarshal(rt, &roundTrip); err != nil {
		return errors.New(msg)
	}
	if paths := droppedKeys(original, roundTrip, "", field); len(paths) > 0 {
		return fmt.Errorf("unknown field %q", paths[0])
	}
	return errors.New(msg)
}

// droppedKeys lists the paths of keys named field that are in orig and not
// in kept.
func droppedKeys(orig, kept any, prefix, field string) []string {
	var out []string
	switch o := orig.(type) {
	case map[string]any:
		k, _ := kept.(map[string]any)
		keys := make([]string, 0, len(o))
		for key := range o {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			kv, present := k[key]
			if !present {
				if key == field {
					out = append(out, path)
				}
				continue
			}
			out = append(out, droppedKeys(o[key], kv, path, field)...)
		}
	case []any:
		k, _ := kept.([]any)
		for i, v := range o {
			if i < len(k) {
				out = append(out, droppedKeys(v, k[i], fmt.Sprintf("%s[%d]", prefix, i), field)...)
			}
		}
	}
	return out
}

func supportedKinds() string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

type document struct {
	line int
	body []byte
}

// splitDocuments splits a multi-document YAML stream on "---" lines,
// remembering the first line of each document.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur bytes.Buffer
	start := 1
	line := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line++
		text := sc.Text()
		if isSeparator(text) {
			if cur.Len() > 0 {
				docs = append(docs, document{line: start, body: append([]byte(nil), cur.Bytes()...)})
			}
			cur.Reset()
			start = line + 1
			continue
		}
		if cur.Len() == 0 {
			// The document starts at its first line of content: blank and
			// comment lines before it are not part of what errors point at.
			if t := strings.TrimSpace(text); t == "" || strings.HasPrefix(t, "#") {
				start = line + 1
				continue
			}
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		docs = append(docs, document{line: start, body: cur.Bytes()})
	}
	return docs
}

func isSeparator(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := strings.TrimSpace(line[3:])
	return rest == "" || strings.HasPrefix(rest, "#")
}

func stripComments(body []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(body, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
