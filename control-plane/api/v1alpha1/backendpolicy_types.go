package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackendPolicy sets how traffic reaches a backend: load balancing, retries,
// timeouts, circuit breaking, outlier detection, active health checks, a
// fallback backend, fault injection and the degraded reply when nothing is
// left. It targets a Service (all traffic to it), or an HTTPRoute or
// GRPCRoute (the traffic of that route).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=bulkhead,shortName=bp
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackendPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackendPolicySpec `json:"spec"`
	Status PolicyStatus      `json:"status,omitempty"`
}

// BackendPolicyList is a list of BackendPolicy.
//
// +kubebuilder:object:root=true
type BackendPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackendPolicy `json:"items"`
}

// BackendPolicySpec is the desired behaviour towards the targets.
//
// +kubebuilder:validation:XValidation:rule="has(self.loadBalancer) || has(self.retry) || has(self.timeout) || has(self.circuitBreaker) || has(self.outlierDetection) || has(self.healthCheck) || has(self.fallback) || has(self.faultInjection) || has(self.degradedResponse)",message="a BackendPolicy must set at least one of loadBalancer, retry, timeout, circuitBreaker, outlierDetection, healthCheck, fallback, faultInjection, degradedResponse"
type BackendPolicySpec struct {
	// TargetRefs are the resources the policy applies to: Services
	// (group ""), HTTPRoutes or GRPCRoutes (group gateway.networking.k8s.io).
	//
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, (r.group == '' && r.kind == 'Service') || (r.group == 'gateway.networking.k8s.io' && (r.kind == 'HTTPRoute' || r.kind == 'GRPCRoute')))",message="targetRefs may only name a Service (group \"\") or an HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
	TargetRefs []PolicyTargetReference `json:"targetRefs"`

	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// +optional
	Retry *Retry `json:"retry,omitempty"`
	// +optional
	Timeout *Timeout `json:"timeout,omitempty"`
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// +optional
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// +optional
	Fallback *Fallback `json:"fallback,omitempty"`
	// +optional
	FaultInjection *FaultInjection `json:"faultInjection,omitempty"`
	// +optional
	DegradedResponse *DegradedResponse `json:"degradedResponse,omitempty"`
}

// LoadBalancerType is a load-balancing algorithm.
//
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;RingHash
type LoadBalancerType string

const (
	LoadBalancerRoundRobin   LoadBalancerType = "RoundRobin"
	LoadBalancerLeastRequest LoadBalancerType = "LeastRequest"
	LoadBalancerRingHash     LoadBalancerType = "RingHash"
)

// LoadBalancer picks the endpoint of each request.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'RingHash' ? has(self.ringHash) : !has(self.ringHash)",message="ringHash must be set when, and only when, type is RingHash"
type LoadBalancer struct {
	Type LoadBalancerType `json:"type"`
	// RingHash hashes a request header, so that requests with the same value
	// go to the same endpoint while it is healthy.
	//
	// +optional
	RingHash *RingHash `json:"ringHash,omitempty"`
}

// RingHash configures consistent hashing.
type RingHash struct {
	// Header whose value is hashed (lower case).
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[a-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Header string `json:"header"`
	// MinimumRingSize of the hash ring (default 1024).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=8388608
	MinimumRingSize *int64 `json:"minimumRingSize,omitempty"`
}

// RetryOn is a condition that makes a request retriable.
//
// +kubebuilder:validation:Enum="5xx";gateway-error;reset;connect-failure;retriable-4xx;refused-stream;retriable-status-codes;cancelled;deadline-exceeded;internal;resource-exhausted;unavailable
type RetryOn string

// Retry re-sends failed requests.
type Retry struct {
	// NumRetries is the number of retries after the first attempt.
	//
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	NumRetries int32 `json:"numRetries"`
	// RetryOn lists the conditions to retry on: HTTP ones (5xx,
	// gateway-error, reset, connect-failure, retriable-4xx, refused-stream,
	// retriable-status-codes) and gRPC status codes (cancelled,
	// deadline-exceeded, internal, resource-exhausted, unavailable).
	//
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=12
	// +listType=set
	RetryOn []RetryOn `json:"retryOn"`
	// RetriableStatusCodes are the HTTP codes retried with
	// retriable-status-codes.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	RetriableStatusCodes []int32 `json:"retriableStatusCodes,omitempty"`
	// Backoff between attempts (exponential with jitter).
	//
	// +optional
	Backoff *Backoff `json:"backoff,omitempty"`
	// PerTryTimeout bounds each attempt.
	//
	// +optional
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
}

// Backoff is an exponential backoff.
type Backoff struct {
	BaseInterval Duration `json:"baseInterval"`
	// MaxInterval defaults to 10 × baseInterval.
	//
	// +optional
	MaxInterval *Duration `json:"maxInterval,omitempty"`
}

// Timeout bounds requests and connections.
//
// +kubebuilder:validation:XValidation:rule="has(self.request) || has(self.idle) || has(self.connect)",message="timeout must set at least one of request, idle, connect"
type Timeout struct {
	// Request bounds a whole request, retries included; 0s disables it (for
	// long streams).
	//
	// +optional
	Request *Duration `json:"request,omitempty"`
	// Idle bounds the time a stream may go without activity.
	//
	// +optional
	Idle *Duration `json:"idle,omitempty"`
	// Connect bounds establishing a connection to an endpoint.
	//
	// +optional
	Connect *Duration `json:"connect,omitempty"`
}

// CircuitBreaker caps what is in flight towards the backend; overflow fails
// fast instead of queueing.
type CircuitBreaker struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`
	// MaxRetries in flight at once; ignored when retryBudget is set.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxRetries *int32 `json:"maxRetries,omitempty"`
	// RetryBudget caps retries to a share of the active requests.
	//
	// +optional
	RetryBudget *RetryBudget `json:"retryBudget,omitempty"`
}

// RetryBudget limits concurrent retries to a percentage of active requests.
type RetryBudget struct {
	// Percent of active requests that may be retries (default 20).
	//
	// +optional
	Percent *Percent `json:"percent,omitempty"`
	// MinRetryConcurrency allowed whatever the active requests (default 3).
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinRetryConcurrency *int32 `json:"minRetryConcurrency,omitempty"`
}

// OutlierDetection ejects endpoints that fail, for a growing time.
type OutlierDetection struct {
	// Consecutive5xx errors (for gRPC: UNAVAILABLE, INTERNAL, …) that eject
	// an endpoint.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	Consecutive5xx *int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors (502, 503, 504 and connection failures).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	// Interval between ejection sweeps (default 10s).
	//
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// BaseEjectionTime, multiplied by the number of ejections (default 30s).
	//
	// +optional
	BaseEjectionTime *Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent of the endpoints ejected at once (default 10).
	//
	// +optional
	MaxEjectionPercent *Percent `json:"maxEjectionPercent,omitempty"`
	// FailurePercentage ejects endpoints whose failure rate over an interval
	// is above a threshold.
	//
	// +optional
	FailurePercentage *FailurePercentage `json:"failurePercentage,omitempty"`
}

// FailurePercentage is failure-rate based ejection.
type FailurePercentage struct {
	Threshold Percent `json:"threshold"`
	// MinimumHosts needed before it applies (default 5).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinimumHosts *int32 `json:"minimumHosts,omitempty"`
	// RequestVolume an endpoint needs in the interval to be judged
	// (default 50).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	RequestVolume *int32 `json:"requestVolume,omitempty"`
}

// HealthCheckType is the protocol of an active health check.
//
// +kubebuilder:validation:Enum=HTTP;GRPC;TCP
type HealthCheckType string

const (
	HealthCheckHTTP HealthCheckType = "HTTP"
	HealthCheckGRPC HealthCheckType = "GRPC"
	HealthCheckTCP  HealthCheckType = "TCP"
)

// HealthCheck actively probes each endpoint (Envoy proxies only; proxyless
// clients rely on outlier detection and the endpoints' own health status).
//
// +kubebuilder:validation:XValidation:rule="self.type == 'HTTP' ? has(self.http) : !has(self.http)",message="http must be set when, and only when, type is HTTP"
// +kubebuilder:validation:XValidation:rule="self.type == 'GRPC' || !has(self.grpc)",message="grpc may only be set when type is GRPC"
type HealthCheck struct {
	Type     HealthCheckType `json:"type"`
	Interval Duration        `json:"interval"`
	Timeout  Duration        `json:"timeout"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	HealthyThreshold *int32 `json:"healthyThreshold,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	UnhealthyThreshold *int32 `json:"unhealthyThreshold,omitempty"`
	// +optional
	HTTP *HTTPHealthCheck `json:"http,omitempty"`
	// +optional
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`
}

// HTTPHealthCheck probes a path.
type HTTPHealthCheck struct {
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path"`
	// ExpectedStatuses that count as healthy (default 200).
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	ExpectedStatuses []int32 `json:"expectedStatuses,omitempty"`
}

// GRPCHealthCheck calls grpc.health.v1.Health/Check.
type GRPCHealthCheck struct {
	// ServiceName asked for (empty: the server as a whole).
	//
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ServiceName string `json:"serviceName,omitempty"`
}

// Fallback is where traffic goes when no endpoint of the primary is healthy
// (priority failover: the fallback's endpoints are a lower priority of the
// same cluster).
type Fallback struct {
	BackendRef BackendRef `json:"backendRef"`
}

// FaultInjection delays or aborts a share of requests, for resilience tests.
//
// +kubebuilder:validation:XValidation:rule="has(self.delay) || has(self.abort)",message="faultInjection must set delay, abort or both"
type FaultInjection struct {
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays requests.
type FaultDelay struct {
	Duration   Duration `json:"duration"`
	Percentage Percent  `json:"percentage"`
}

// FaultAbort fails requests with an HTTP or gRPC status.
//
// +kubebuilder:validation:XValidation:rule="has(self.httpStatus) != has(self.grpcStatus)",message="abort must set exactly one of httpStatus, grpcStatus"
type FaultAbort struct {
	// +optional
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	// GRPCStatus code (1..16).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	GRPCStatus *int32  `json:"grpcStatus,omitempty"`
	Percentage Percent `json:"percentage"`
}

// DegradedResponse is the reply sent at once when no upstream is left
// (overflow, no healthy endpoint, timeout): the OpenAI error shape with the
// DeepSeek status code, never an empty or HTML body.
type DegradedResponse struct {
	// StatusCode of the reply (503 overloaded by default).
	//
	// +optional
	// +kubebuilder:validation:Minimum=400
	// +kubebuilder:validation:Maximum=599
	StatusCode *int32 `json:"statusCode,omitempty"`
	// Message of the error object.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message"`
	// Type of the error object (default "overloaded").
	//
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z_]+$`
	Type string `json:"type,omitempty"`
	// RetryAfter is sent as the Retry-After header, in whole seconds.
	//
	// +optional
	RetryAfter *Duration `json:"retryAfter,omitempty"`
}
