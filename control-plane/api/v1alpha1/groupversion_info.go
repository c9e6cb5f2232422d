// Package v1alpha1 holds the policy resources of Bulkhead (group
// mesh.bulkhead.dev): BackendPolicy, RateLimitPolicy and SecurityPolicy. They
// attach to Gateway API and core resources with targetRefs (GEP-713).
//
// The CRD YAML in policies/crds/ is generated from these types by
// controller-gen (make generate): the kubebuilder markers below are the
// admission-time validation (OpenAPI and CEL); the translator validates the
// rest, with the same messages, in both the file and Kubernetes modes.
//
// +kubebuilder:object:generate=true
// +groupName=mesh.bulkhead.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the policy resources.
var GroupVersion = schema.GroupVersion{Group: "mesh.bulkhead.dev", Version: "v1alpha1"}

// AddToScheme registers the policy kinds in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&BackendPolicy{}, &BackendPolicyList{},
		&RateLimitPolicy{}, &RateLimitPolicyList{},
		&SecurityPolicy{}, &SecurityPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
