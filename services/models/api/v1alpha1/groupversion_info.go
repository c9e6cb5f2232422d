// Package v1alpha1 holds the Model resource (group models.bulkhead.dev):
// a model the platform serves, its engine and backends, limits, prices,
// fallbacks and visibility. SREs declare Models the way they declare
// policies: YAML in a watched directory in universal mode (policies/models
// and the files `bulkhead models apply` and `bulkhead up --upstream`
// write), the same objects as CRDs in Kubernetes mode.
//
// The CRD YAML in policies/crds/ is generated from these types by
// controller-gen (make generate); the markers are the admission-time
// checks, and package modelconfig validates the rest, with messages that
// name the field.
//
// +kubebuilder:object:generate=true
// +groupName=models.bulkhead.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of Model.
var GroupVersion = schema.GroupVersion{Group: "models.bulkhead.dev", Version: "v1alpha1"}

// AddToScheme registers the kinds in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Model{}, &ModelList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
