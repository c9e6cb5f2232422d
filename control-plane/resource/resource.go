// Package resource is the control plane's input: one consistent snapshot of
// the Kubernetes-style objects it translates (Gateway API routes, Services,
// EndpointSlices and the mesh.bulkhead.dev policies), whatever provider read
// them. Each object remembers where it came from, so that every error can
// name the file (or the Kubernetes object) that caused it.
package resource

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
)

// ControllerName is the GatewayClass controllerName of the Gateways this
// control plane programs (Kubernetes mode: the only Gateways it reads).
const ControllerName = "bulkhead.dev/gateway-controller"

// Origin says where an object was read.
type Origin struct {
	// File is the path of the YAML file (universal mode); empty for objects
	// read from the Kubernetes API.
	File string
	// Line is the first line of the object's document in File.
	Line int
	// Generation is the object's metadata.generation as read (0 when the
	// file does not say; the API server counts it in Kubernetes mode):
	// the status of the object is reported as observed at it.
	Generation int64
}

func (o Origin) String() string {
	if o.File == "" {
		return "kubernetes"
	}
	return fmt.Sprintf("%s:%d", o.File, o.Line)
}

// Key identifies an object: kind, namespace, name.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

func (k Key) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// KeyOf returns the key of an object.
func KeyOf(kind string, obj client.Object) Key {
	return Key{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Resources is one consistent snapshot of the input. Lists are sorted by
// namespace and name, so that translation is deterministic.
type Resources struct {
	// GatewayClasses are read; those naming ControllerName get Accepted. In
	// universal mode every Gateway is ours whatever its class; in
	// Kubernetes mode the provider keeps only the Gateways of our classes.
	GatewayClasses    []*gwapiv1.GatewayClass
	Gateways          []*gwapiv1.Gateway
	HTTPRoutes        []*gwapiv1.HTTPRoute
	GRPCRoutes        []*gwapiv1.GRPCRoute
	Services          []*corev1.Service
	EndpointSlices    []*discoveryv1.EndpointSlice
	BackendPolicies   []*v1alpha1.BackendPolicy
	RateLimitPolicies []*v1alpha1.RateLimitPolicy
	SecurityPolicies  []*v1alpha1.SecurityPolicy
	// ReferenceGrants allow references from other namespaces (a route's
	// backend in another namespace), as Gateway API says.
	ReferenceGrants []*gwapiv1.ReferenceGrant
	// ForeignGateways are the Gateways of other controllers (their
	// GatewayClass names another controller): routes may name them as
	// parents, which is no concern of ours (Kubernetes mode).
	ForeignGateways []Key

	origins map[Key]Origin
	// refused are the versions that could not be accepted (refused.go).
	refused map[Key]*Refused
}

// Origin returns where the object with key k was read.
func (r *Resources) Origin(k Key) Origin { return r.origins[k] }

// SetOrigin records where the object with key k was read.
func (r *Resources) SetOrigin(k Key, o Origin) {
	if r.origins == nil {
		r.origins = map[Key]Origin{}
	}
	r.origins[k] = o
}

// Sort orders every list by namespace, then name.
func (r *Resources) Sort() {
	sortObjects(r.GatewayClasses)
	sortObjects(r.Gateways)
	sortObjects(r.HTTPRoutes)
	sortObjects(r.GRPCRoutes)
	sortObjects(r.Services)
	sortObjects(r.EndpointSlices)
	sortObjects(r.BackendPolicies)
	sortObjects(r.RateLimitPolicies)
	sortObjects(r.SecurityPolicies)
	sortObjects(r.ReferenceGrants)
}

func sortObjects[T client.Object](list []T) {
	sort.SliceStable(list, func(i, j int) bool {
		if a, b := list[i].GetNamespace(), list[j].GetNamespace(); a != b {
			return a < b
		}
		return list[i].GetName() < list[j].GetName()
	})
}
