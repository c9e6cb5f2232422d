// Package ir is the intermediate representation between translation and
// xDS: what one proxy must do, as plain Go values. It depends on the standard
// library and on the workload identity leaf (internal/workload) only;
// translate produces it, the xds package turns it into Envoy or
// proxyless-gRPC resources.
package ir

import (
	"fmt"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Config is the whole configuration of the proxies of one ProxyID.
type Config struct {
	Proxy workload.ProxyID `json:"proxy,omitempty"`
	// Listeners, sorted by name.
	Listeners []*Listener `json:"listeners,omitempty"`
	// Clusters, sorted by name, with their endpoints.
	Clusters []*Cluster `json:"clusters,omitempty"`
	// RateLimitDomains are the rate-limit service's configuration (role
	// ratelimit), sorted by domain.
	RateLimitDomains []*RateLimitDomain `json:"rateLimitDomains,omitempty"`
}

// ListenerKind says how a listener is realised.
type ListenerKind string

const (
	// ListenerClient is a proxyless client's view of a destination (an
	// api_listener named after the host:port the application dials).
	ListenerClient ListenerKind = "client"
	// ListenerServer is an xDS-enabled gRPC server's inbound listener, on
	// the address it listens on.
	ListenerServer ListenerKind = "server"
	// ListenerHTTP is an Envoy listener (router, gateway) accepting HTTP/1.1
	// and HTTP/2 (gRPC) on Host:Port.
	ListenerHTTP ListenerKind = "http"
)

// Listener receives traffic for one destination (clients) or on one address.
type Listener struct {
	Name string       `json:"name,omitempty"`
	Kind ListenerKind `json:"kind,omitempty"`
	// Host and Port the application dials (ListenerClient), or the address
	// and port the server listens on (ListenerServer).
	Host string `json:"host,omitempty"`
	Port uint32 `json:"port,omitempty"`
	// VirtualHosts in match order.
	VirtualHosts []*VirtualHost `json:"virtualHosts,omitempty"`
	// Degraded replaces Envoy's own local replies when no upstream is left
	// (Envoy listeners).
	Degraded *DegradedResponse `json:"degraded,omitempty"`
	// Security of a server listener: mTLS and authorization (from the
	// Service's SecurityPolicy); nil: plaintext, every call allowed.
	Security *InboundSecurity `json:"security,omitempty"`
	// ExtAuthz of a Gateway listener (its SecurityPolicy's extAuth).
	ExtAuthz *ExtAuthz `json:"extAuthz,omitempty"`
	// IPAccess of a Gateway listener (its SecurityPolicy's ipAccess).
	IPAccess *IPAccess `json:"ipAccess,omitempty"`
	// RateLimit is the global rate-limit filter; the rules are on the
	// routes (RateLimitPolicy.global).
	RateLimit *GlobalRateLimit `json:"rateLimit,omitempty"`
	// LocalRateLimit is counted by each Envoy on its own
	// (RateLimitPolicy.local on a Gateway).
	LocalRateLimit *LocalRateLimit `json:"localRateLimit,omitempty"`
	// MaxRequestBytes bounds request bodies (413 beyond); 0: no bound.
	MaxRequestBytes uint32 `json:"maxRequestBytes,omitempty"`
	// Tracing sends the listener's spans to an OpenTelemetry collector.
	Tracing *Tracing `json:"tracing,omitempty"`
}

// Tracing exports spans over OTLP/gRPC.
type Tracing struct {
	// Cluster of the collector's OTLP gRPC port.
	Cluster string `json:"cluster"`
	// ServiceName of the spans ("gateway-ai", "router-edge").
	ServiceName string `json:"serviceName"`
	// SamplePercent of the requests traced (a client's own sampled
	// traceparent is always followed).
	SamplePercent uint32 `json:"samplePercent"`
}

// VirtualHost groups the routes of a set of domains.
type VirtualHost struct {
	Name    string   `json:"name,omitempty"`
	Domains []string `json:"domains,omitempty"`
	// Routes in match order (the first that matches wins).
	Routes []*Route `json:"routes,omitempty"`
}

// Route is one match and what to do with the requests it matches.
type Route struct {
	Name string `json:"name,omitempty"`
	// Source is the input object and rule this route comes from, for config
	// dumps and errors ("GRPCRoute default/chat rule 0 match 1").
	Source string `json:"source,omitempty"`
	Match  Match  `json:"match,omitempty"`
	// Backends with weights; the request goes to one of them.
	Backends []WeightedBackend `json:"backends,omitempty"`
	// Timeout of the whole request, retries included; nil: none.
	Timeout *Duration `json:"timeout,omitempty"`
	// IdleTimeout bounds the time a stream may go without activity (Envoy
	// proxies; proxyless gRPC clients have no per-route idle timeout); nil:
	// the listener's.
	IdleTimeout *Duration `json:"idleTimeout,omitempty"`
	// Retry, Fault and HashPolicy come from BackendPolicy; nil: none.
	Retry      *Retry      `json:"retry,omitempty"`
	Fault      *Fault      `json:"fault,omitempty"`
	HashPolicy *HashPolicy `json:"hashPolicy,omitempty"`

	// Gateway API filters (Envoy proxies).
	RequestHeaders  *HeaderMods `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderMods `json:"responseHeaders,omitempty"`
	// Redirect replaces Backends: the proxy answers with a redirect.
	Redirect *Redirect `json:"redirect,omitempty"`
	// Closed replaces everything: the proxy answers every request itself
	// (a route whose SecurityPolicy cannot be accepted fails closed).
	Closed  *DirectResponse `json:"closed,omitempty"`
	Rewrite *Rewrite        `json:"rewrite,omitempty"`
	// Mirrors receive a copy of the requests (responses ignored).
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// PerTryTimeout bounds each attempt (HTTPRoute timeouts.backendRequest);
	// with a Retry, Retry.PerTryTimeout is what applies (the retry feature
	// copies this one there).
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	// RateLimits are the global rules that apply to this route (Envoy
	// gateways; the listener's RateLimit filter sends them).
	RateLimits []RateLimitRule `json:"rateLimits,omitempty"`
	// JWT is the token the route requires (Envoy gateways); nil: none.
	JWT *JWTRequirement `json:"jwt,omitempty"`
	// GRPC routes carry gRPC streams (from a GRPCRoute): an Envoy never
	// buffers their requests (client streams would stall).
	GRPC bool `json:"grpc,omitempty"`
}

// DirectResponse is a reply the proxy makes itself; its body is the
// message, which the listener's local-reply format puts in the API's error
// shape.
type DirectResponse struct {
	StatusCode uint32 `json:"statusCode"`
	Message    string `json:"message"`
}

// HeaderMods sets, adds and removes headers.
type HeaderMods struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Header is a name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Redirect answers with a redirect; empty fields keep the request's value.
type Redirect struct {
	Scheme     string `json:"scheme,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	Port       uint32 `json:"port,omitempty"`
	StatusCode uint32 `json:"statusCode,omitempty"`
	// FullPath replaces the path; PrefixPath replaces the matched prefix.
	FullPath   string `json:"fullPath,omitempty"`
	PrefixPath string `json:"prefixPath,omitempty"`
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	Hostname   string `json:"hostname,omitempty"`
	FullPath   string `json:"fullPath,omitempty"`
	PrefixPath string `json:"prefixPath,omitempty"`
}

// Mirror sends a copy of requests to a cluster.
type Mirror struct {
	Cluster string `json:"cluster"`
	// Percent of requests mirrored (100 by default).
	Percent uint32 `json:"percent,omitempty"`
}

// Retry re-sends failed requests.
type Retry struct {
	NumRetries uint32 `json:"numRetries,omitempty"`
	// On lists Envoy retry_on conditions ("5xx", "reset", …) and gRPC
	// status names ("unavailable", "cancelled", …).
	On                   []string  `json:"on,omitempty"`
	RetriableStatusCodes []uint32  `json:"retriableStatusCodes,omitempty"`
	BaseInterval         *Duration `json:"baseInterval,omitempty"`
	MaxInterval          *Duration `json:"maxInterval,omitempty"`
	PerTryTimeout        *Duration `json:"perTryTimeout,omitempty"`
}

// Fault delays or aborts a share of requests.
type Fault struct {
	Delay        *Duration `json:"delay,omitempty"`
	DelayPercent uint32    `json:"delayPercent,omitempty"`
	// Exactly one of AbortHTTPStatus and AbortGRPCStatus is set with Abort.
	Abort           bool   `json:"abort,omitempty"`
	AbortHTTPStatus uint32 `json:"abortHTTPStatus,omitempty"`
	AbortGRPCStatus uint32 `json:"abortGRPCStatus,omitempty"`
	AbortPercent    uint32 `json:"abortPercent,omitempty"`
}

// HashPolicy picks the hash key of ring-hash load balancing.
type HashPolicy struct {
	// Header whose value is hashed.
	Header string `json:"header,omitempty"`
}

// Match is a conjunction: every set condition must hold.
type Match struct {
	// Exactly one of the path conditions is set (PathPrefix "/" matches all).
	PathExact  string        `json:"pathExact,omitempty"`
	PathPrefix string        `json:"pathPrefix,omitempty"`
	PathRegex  string        `json:"pathRegex,omitempty"`
	Headers    []HeaderMatch `json:"headers,omitempty"`
	// QueryParams (Envoy only: proxyless gRPC has no query string).
	QueryParams []HeaderMatch `json:"queryParams,omitempty"`
}

// HeaderMatch matches one header.
type HeaderMatch struct {
	Name string `json:"name,omitempty"`
	// Exact or Regex; neither means "present".
	Exact  string `json:"exact,omitempty"`
	Regex  string `json:"regex,omitempty"`
	Invert bool   `json:"invert,omitempty"`
}

// WeightedBackend is a cluster and its share of the traffic.
type WeightedBackend struct {
	Cluster string `json:"cluster,omitempty"`
	Weight  uint32 `json:"weight,omitempty"`
}

// Cluster is a set of endpoints and how to reach them.
type Cluster struct {
	// Name, also the EDS service name: "<service>.<namespace>:<port>".
	Name      string `json:"name,omitempty"`
	Service   string `json:"service,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Port      uint32 `json:"port,omitempty"`
	// HTTP2 is set when the Service port speaks HTTP/2 (gRPC); Envoy then
	// connects with HTTP/2 in clear text.
	HTTP2 bool `json:"http2,omitempty"`
	// Endpoints grouped by locality and priority, sorted.
	Localities []*LocalityEndpoints `json:"localities,omitempty"`

	// The rest comes from BackendPolicy; zero values mean defaults.
	LB               LoadBalancer      `json:"lb,omitempty"`
	ConnectTimeout   *Duration         `json:"connectTimeout,omitempty"`
	CircuitBreaker   *CircuitBreaker   `json:"circuitBreaker,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// Fallback is the cluster whose endpoints take the traffic, at the next
	// priority, when this one has no healthy endpoint.
	Fallback string `json:"fallback,omitempty"`
	// HealthCheck is an active health check (Envoy only).
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// Static clusters carry their endpoints inline instead of over EDS (a
	// sidecar's local app).
	Static bool `json:"static,omitempty"`
	// Degraded is the reply Envoy sends when nothing of this cluster can
	// take a request (from BackendPolicy.degradedResponse).
	Degraded *DegradedResponse `json:"degraded,omitempty"`
	// TLS: clients originate mTLS (the Service's SecurityPolicy is STRICT).
	TLS *UpstreamTLS `json:"tls,omitempty"`
}

// DegradedResponse is a fast, contract-shaped error reply.
type DegradedResponse struct {
	StatusCode uint32 `json:"statusCode"`
	// Body is the JSON error object.
	Body              string `json:"body"`
	RetryAfterSeconds uint32 `json:"retryAfterSeconds,omitempty"`
}

// HealthCheck probes every endpoint.
type HealthCheck struct {
	// Type is HTTP, GRPC or TCP.
	Type               string   `json:"type"`
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	HealthyThreshold   uint32   `json:"healthyThreshold"`
	UnhealthyThreshold uint32   `json:"unhealthyThreshold"`
	// Path and ExpectedStatuses for HTTP.
	Path             string   `json:"path,omitempty"`
	ExpectedStatuses []uint32 `json:"expectedStatuses,omitempty"`
	// GRPCServiceName for GRPC (empty: the server as a whole).
	GRPCServiceName string `json:"grpcServiceName,omitempty"`
}

// LBPolicy is a load-balancing algorithm.
type LBPolicy string

const (
	LBRoundRobin   LBPolicy = "RoundRobin"
	LBLeastRequest LBPolicy = "LeastRequest"
	LBRingHash     LBPolicy = "RingHash"
)

// LoadBalancer configures endpoint picking.
type LoadBalancer struct {
	// Policy; empty means round robin.
	Policy          LBPolicy `json:"policy,omitempty"`
	MinimumRingSize uint64   `json:"minimumRingSize,omitempty"`
}

// CircuitBreaker caps what is in flight; nil fields keep Envoy's defaults.
type CircuitBreaker struct {
	MaxConnections     *uint32 `json:"maxConnections,omitempty"`
	MaxPendingRequests *uint32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        *uint32 `json:"maxRequests,omitempty"`
	MaxRetries         *uint32 `json:"maxRetries,omitempty"`
	// RetryBudgetPercent set means a retry budget replaces MaxRetries.
	RetryBudgetPercent  *float64 `json:"retryBudgetPercent,omitempty"`
	MinRetryConcurrency *uint32  `json:"minRetryConcurrency,omitempty"`
}

// OutlierDetection ejects failing endpoints.
type OutlierDetection struct {
	Consecutive5xx                 *uint32   `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayErrors       *uint32   `json:"consecutiveGatewayErrors,omitempty"`
	Interval                       *Duration `json:"interval,omitempty"`
	BaseEjectionTime               *Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent             *uint32   `json:"maxEjectionPercent,omitempty"`
	FailurePercentageThreshold     *uint32   `json:"failurePercentageThreshold,omitempty"`
	FailurePercentageMinimumHosts  *uint32   `json:"failurePercentageMinimumHosts,omitempty"`
	FailurePercentageRequestVolume *uint32   `json:"failurePercentageRequestVolume,omitempty"`
}

// LocalityEndpoints are the endpoints of one locality at one priority.
type LocalityEndpoints struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"subZone,omitempty"`
	// Priority 0 is used first; higher ones take the traffic when the lower
	// ones have no healthy endpoint (failover).
	Priority uint32 `json:"priority,omitempty"`
	// Weight of the locality within its priority.
	Weight    uint32      `json:"weight,omitempty"`
	Endpoints []*Endpoint `json:"endpoints,omitempty"`
}

// Health of an endpoint as the input declares it.
type Health string

const (
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthDraining  Health = "draining"
)

// Endpoint is one address of a cluster.
type Endpoint struct {
	Address string `json:"address,omitempty"`
	Port    uint32 `json:"port,omitempty"`
	Health  Health `json:"health,omitempty"`
	Weight  uint32 `json:"weight,omitempty"`
}

// Duration is a time.Duration that reads and writes as "1.5s" in YAML and
// JSON (config dumps, goldens).
type Duration time.Duration

// D converts a time.Duration.
func D(d time.Duration) *Duration { v := Duration(d); return &v }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ClusterName is the name of the cluster of a Service port.
func ClusterName(service, namespace string, port uint32) string {
	return fmt.Sprintf("%s.%s:%d", service, namespace, port)
}

// Snapshot is one translation's configuration of every proxy, what the
// server publishes. Config is that of the proxies of one ProxyID: a
// function rather than a map, because proxies are only known when they
// connect and a sidecar's inbound port makes its configuration per
// instance.
type Snapshot interface {
	Config(id workload.ProxyID) *Config
}
