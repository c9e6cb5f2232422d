package resource

import (
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
	"github.com/bulkhead-mesh/bulkhead/internal/yamldoc"
)

// DefaultNamespace is given to objects that name none, as kubectl does.
const DefaultNamespace = "default"

// kindSpec says how to decode and store one kind.
type kindSpec struct {
	kind   string
	newObj func() client.Object
	add    func(*Resources, client.Object)
	each   func(*Resources, func(client.Object))
}

// kindOf is the kindSpec of one list of Resources.
func kindOf[T client.Object](kind string, newObj func() T, list func(*Resources) *[]T) kindSpec {
	return kindSpec{
		kind:   kind,
		newObj: func() client.Object { return newObj() },
		add:    func(r *Resources, o client.Object) { l := list(r); *l = append(*l, o.(T)) },
		each: func(r *Resources, fn func(client.Object)) {
			for _, o := range *list(r) {
				fn(o)
			}
		},
	}
}

// kinds lists every kind the control plane reads, by "apiVersion/kind".
var kinds = map[string]kindSpec{
	"gateway.networking.k8s.io/v1/GatewayClass":   kindOf("GatewayClass", func() *gwapiv1.GatewayClass { return &gwapiv1.GatewayClass{} }, func(r *Resources) *[]*gwapiv1.GatewayClass { return &r.GatewayClasses }),
	"gateway.networking.k8s.io/v1/Gateway":        kindOf("Gateway", func() *gwapiv1.Gateway { return &gwapiv1.Gateway{} }, func(r *Resources) *[]*gwapiv1.Gateway { return &r.Gateways }),
	"gateway.networking.k8s.io/v1/HTTPRoute":      kindOf("HTTPRoute", func() *gwapiv1.HTTPRoute { return &gwapiv1.HTTPRoute{} }, func(r *Resources) *[]*gwapiv1.HTTPRoute { return &r.HTTPRoutes }),
	"gateway.networking.k8s.io/v1/GRPCRoute":      kindOf("GRPCRoute", func() *gwapiv1.GRPCRoute { return &gwapiv1.GRPCRoute{} }, func(r *Resources) *[]*gwapiv1.GRPCRoute { return &r.GRPCRoutes }),
	"v1/Service":                                  kindOf("Service", func() *corev1.Service { return &corev1.Service{} }, func(r *Resources) *[]*corev1.Service { return &r.Services }),
	"discovery.k8s.io/v1/EndpointSlice":           kindOf("EndpointSlice", func() *discoveryv1.EndpointSlice { return &discoveryv1.EndpointSlice{} }, func(r *Resources) *[]*discoveryv1.EndpointSlice { return &r.EndpointSlices }),
	"mesh.bulkhead.dev/v1alpha1/BackendPolicy":    kindOf("BackendPolicy", func() *v1alpha1.BackendPolicy { return &v1alpha1.BackendPolicy{} }, func(r *Resources) *[]*v1alpha1.BackendPolicy { return &r.BackendPolicies }),
	"mesh.bulkhead.dev/v1alpha1/RateLimitPolicy":  kindOf("RateLimitPolicy", func() *v1alpha1.RateLimitPolicy { return &v1alpha1.RateLimitPolicy{} }, func(r *Resources) *[]*v1alpha1.RateLimitPolicy { return &r.RateLimitPolicies }),
	"gateway.networking.k8s.io/v1/ReferenceGrant": kindOf("ReferenceGrant", func() *gwapiv1.ReferenceGrant { return &gwapiv1.ReferenceGrant{} }, func(r *Resources) *[]*gwapiv1.ReferenceGrant { return &r.ReferenceGrants }),
	// v1beta1 has the same schema; it is read as v1.
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant": kindOf("ReferenceGrant", func() *gwapiv1.ReferenceGrant { return &gwapiv1.ReferenceGrant{} }, func(r *Resources) *[]*gwapiv1.ReferenceGrant { return &r.ReferenceGrants }),
	"mesh.bulkhead.dev/v1alpha1/SecurityPolicy":        kindOf("SecurityPolicy", func() *v1alpha1.SecurityPolicy { return &v1alpha1.SecurityPolicy{} }, func(r *Resources) *[]*v1alpha1.SecurityPolicy { return &r.SecurityPolicies }),
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
	for _, doc := range yamldoc.Split(data) {
		origin := Origin{File: file, Line: doc.Line}
		if err := decodeOne(r, origin, doc.Body); err != nil {
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
		if yamldoc.Blank(body) {
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
	obj.SetName(name)
	obj.SetNamespace(ns)
	key := KeyOf(head.Kind, obj)
	// A refused version is recorded against its object: the provider keeps
	// the last accepted one in force, and its status says why.
	refuse := func(errs ...error) {
		rf := &Refused{Origin: origin}
		for _, e := range errs {
			var de *DecodeError
			if errors.As(e, &de) {
				e = de.Err
			}
			rf.Errors = append(rf.Errors, e)
		}
		lenient := spec.newObj()
		if json.Unmarshal(js, lenient) == nil {
			rf.TargetRefs = targetRefsOf(lenient)
		}
		r.Refuse(key, rf)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		err := &DecodeError{Origin: origin, Object: object, Err: yamldoc.ExplainStrict(body, spec.newObj(), err)}
		refuse(err)
		return err
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
			refuse(out...)
			return errors.Join(out...)
		}
	}
	obj.SetNamespace(ns)
	if prev, dup := r.origins[key]; dup {
		return &DecodeError{Origin: origin, Object: object, Err: fmt.Errorf("defined twice; first at %s", prev)}
	}
	origin.Generation = obj.GetGeneration()
	r.SetOrigin(key, origin)
	spec.add(r, obj)
	return nil
}

// targetRefsOf is a policy's targetRefs (nil for other kinds).
func targetRefsOf(obj client.Object) []v1alpha1.PolicyTargetReference {
	switch p := obj.(type) {
	case *v1alpha1.BackendPolicy:
		return p.Spec.TargetRefs
	case *v1alpha1.SecurityPolicy:
		return p.Spec.TargetRefs
	case *v1alpha1.RateLimitPolicy:
		return p.Spec.TargetRefs
	}
	return nil
}

func supportedKinds() string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
