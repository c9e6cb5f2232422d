package v1alpha1

import (
	"fmt"
	"time"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Duration is a Gateway API duration ("500ms", "10s", "1m30s"; GEP-2257).
//
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
type Duration string

// Parse returns the duration.
func (d Duration) Parse() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (examples: 500ms, 10s, 1m30s)", string(d))
	}
	return v, nil
}

// PolicyTargetReference names the resource a policy attaches to, in the
// policy's namespace (GEP-713). sectionName narrows it to a port of a
// Service, a listener of a Gateway or a named rule of a route.
type PolicyTargetReference = gwapiv1.LocalPolicyTargetReferenceWithSectionName

// BackendRef names a Service port in the policy's namespace.
type BackendRef struct {
	// Name of the Service.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Port of the Service.
	//
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// Percent is a whole percentage.
//
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percent int32

// PolicyStatus is the status of every policy kind: one entry per ancestor
// (the Gateway, or the Service for east-west) that the policy reaches, with
// the Accepted and Programmed conditions.
type PolicyStatus = gwapiv1.PolicyStatus

// Condition types and reasons the control plane sets.
const (
	// ConditionAccepted: the policy is valid and its targets exist.
	ConditionAccepted = "Accepted"
	// ConditionProgrammed: every proxy the policy reaches has ACKed the
	// configuration version that carries it.
	ConditionProgrammed = "Programmed"

	ReasonAccepted         = "Accepted"
	ReasonInvalid          = "Invalid"
	ReasonTargetNotFound   = "TargetNotFound"
	ReasonConflicted       = "Conflicted"
	ReasonProgrammed       = "Programmed"
	ReasonPending          = "Pending"
	ReasonRejectedByProxy  = "RejectedByProxy"
	ReasonNoProxyConnected = "NoProxyConnected"
)
