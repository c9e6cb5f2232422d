// Package ir is the intermediate representation between translation and
// xDS: what one proxy must do, as plain Go values. It depends on the standard
// library only; translate produces it, the xds package turns it into Envoy or
// proxyless-gRPC resources.
package ir

import (
	"fmt"
	"strings"
	"time"
)

// Role is what a proxy is, from its bootstrap node metadata.
type Role string

const (
	RoleRouter    Role = "router"
	RoleGateway   Role = "gateway"
	RoleSidecar   Role = "sidecar"
	RoleGRPC      Role = "grpc" // a proxyless gRPC application
	RoleRateLimit Role = "ratelimit"
)

// Roles lists every role, in a fixed order.
var Roles = []Role{RoleRouter, RoleGateway, RoleSidecar, RoleGRPC, RoleRateLimit}

// ProxyID names the configuration a proxy receives: every proxy with the
// same ProxyID (the replicas of one service, say) gets the same one.
type ProxyID struct {
	Role Role
	// Namespace of the gateway or service.
	Namespace string
	// Name of the gateway (router, gateway) or of the service (sidecar,
	// grpc); empty for the rate-limit service.
	Name string
}

func (p ProxyID) String() string { return string(p.Role) + "/" + p.Namespace + "/" + p.Name }

// ParseProxyID reads "ROLE/NAME" (namespace default) or "ROLE/NAMESPACE/NAME".
func ParseProxyID(s string) (ProxyID, error) {
	parts := strings.Split(s, "/")
	var id ProxyID
	switch len(parts) {
	case 2:
		id = ProxyID{Role: Role(parts[0]), Namespace: "default", Name: parts[1]}
	case 3:
		id = ProxyID{Role: Role(parts[0]), Namespace: parts[1], Name: parts[2]}
	default:
		return ProxyID{}, fmt.Errorf("node %q: want ROLE/NAME or ROLE/NAMESPACE/NAME", s)
	}
	for _, r := range Roles {
		if id.Role == r {
			if id.Name == "" && r != RoleRateLimit {
				return ProxyID{}, fmt.Errorf("node %q: name is empty", s)
			}
			return id, nil
		}
	}
	return ProxyID{}, fmt.Errorf("node %q: unknown role %q (want one of router, gateway, sidecar, grpc, ratelimit)", s, id.Role)
}

// Config is the whole configuration of the proxies of one ProxyID.
type Config struct {
	Proxy ProxyID
	// Listeners, sorted by name.
	Listeners []*Listener
	// Clusters, sorted by name, with their endpoints.
	Clusters []*Cluster
}

// ListenerKind says how a listener is realised.
type ListenerKind string

const (
	// ListenerClient is a proxyless client's view of a destination (an
	// api_listener named after the host:port the application dials).
	ListenerClient ListenerKind = "client"
)

// Listener receives traffic for one destination (clients) or on one address.
type Listener struct {
	Name string
	Kind ListenerKind
	// Host and Port the application dials (ListenerClient).
	Host string
	Port uint32
	// VirtualHosts in match order.
	VirtualHosts []*VirtualHost
}

// VirtualHost groups the routes of a set of domains.
type VirtualHost struct {
	Name    string
	Domains []string
	// Routes in match order (the first that matches wins).
	Routes []*Route
}

// Route is one match and what to do with the requests it matches.
type Route struct {
	Name string
	// Source is the input object and rule this route comes from, for config
	// dumps and errors ("GRPCRoute default/chat rule 0 match 1").
	Source string
	Match  Match
	// Backends with weights; the request goes to one of them.
	Backends []WeightedBackend
	// Timeout of the whole request, retries included; nil: none.
	Timeout *time.Duration
	// Retry, Fault and HashPolicy come from BackendPolicy; nil: none.
	Retry      *Retry
	Fault      *Fault
	HashPolicy *HashPolicy
}

// Retry re-sends failed requests.
type Retry struct {
	NumRetries uint32
	// On lists Envoy retry_on conditions ("5xx", "reset", …) and gRPC
	// status names ("unavailable", "cancelled", …).
	On                   []string
	RetriableStatusCodes []uint32
	BaseInterval         *time.Duration
	MaxInterval          *time.Duration
	PerTryTimeout        *time.Duration
}

// Fault delays or aborts a share of requests.
type Fault struct {
	Delay        *time.Duration
	DelayPercent uint32
	// Exactly one of AbortHTTPStatus and AbortGRPCStatus is set with Abort.
	Abort           bool
	AbortHTTPStatus uint32
	AbortGRPCStatus uint32
	AbortPercent    uint32
}

// HashPolicy picks the hash key of ring-hash load balancing.
type HashPolicy struct {
	// Header whose value is hashed.
	Header string
}

// Match is a conjunction: every set condition must hold.
type Match struct {
	// Exactly one of the path conditions is set (PathPrefix "/" matches all).
	PathExact  string
	PathPrefix string
	PathRegex  string
	Headers    []HeaderMatch
}

// HeaderMatch matches one header.
type HeaderMatch struct {
	Name string
	// Exact or Regex; neither means "present".
	Exact  string
	Regex  string
	Invert bool
}

// WeightedBackend is a cluster and its share of the traffic.
type WeightedBackend struct {
	Cluster string
	Weight  uint32
}

// Cluster is a set of endpoints and how to reach them.
type Cluster struct {
	// Name, also the EDS service name: "<service>.<namespace>:<port>".
	Name      string
	Service   string
	Namespace string
	Port      uint32
	// Endpoints grouped by locality and priority, sorted.
	Localities []*LocalityEndpoints

	// The rest comes from BackendPolicy; zero values mean defaults.
	LB               LoadBalancer
	ConnectTimeout   *time.Duration
	CircuitBreaker   *CircuitBreaker
	OutlierDetection *OutlierDetection
	// Fallback is the cluster whose endpoints take the traffic, at the next
	// priority, when this one has no healthy endpoint.
	Fallback string
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
	Policy          LBPolicy
	MinimumRingSize uint64
}

// CircuitBreaker caps what is in flight; nil fields keep Envoy's defaults.
type CircuitBreaker struct {
	MaxConnections     *uint32
	MaxPendingRequests *uint32
	MaxRequests        *uint32
	MaxRetries         *uint32
	// RetryBudgetPercent set means a retry budget replaces MaxRetries.
	RetryBudgetPercent  *float64
	MinRetryConcurrency *uint32
}

// OutlierDetection ejects failing endpoints.
type OutlierDetection struct {
	Consecutive5xx                 *uint32
	ConsecutiveGatewayErrors       *uint32
	Interval                       *time.Duration
	BaseEjectionTime               *time.Duration
	MaxEjectionPercent             *uint32
	FailurePercentageThreshold     *uint32
	FailurePercentageMinimumHosts  *uint32
	FailurePercentageRequestVolume *uint32
}

// LocalityEndpoints are the endpoints of one locality at one priority.
type LocalityEndpoints struct {
	Region, Zone, SubZone string
	// Priority 0 is used first; higher ones take the traffic when the lower
	// ones have no healthy endpoint (failover).
	Priority uint32
	// Weight of the locality within its priority.
	Weight    uint32
	Endpoints []*Endpoint
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
	Address string
	Port    uint32
	Health  Health
	Weight  uint32
}

// ClusterName is the name of the cluster of a Service port.
func ClusterName(service, namespace string, port uint32) string {
	return fmt.Sprintf("%s.%s:%d", service, namespace, port)
}
