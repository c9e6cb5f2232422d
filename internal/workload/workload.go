// Package workload is who a workload of the mesh is: the identity that
// selects its configuration (ProxyID: role, namespace, name), the SPIFFE ID
// it proves with its certificate, and the names its bootstrap and the
// control plane agree on. It is a leaf: the standard library only, so that
// services, the control plane and the tools can all use it without linking
// each other.
package workload

import (
	"fmt"
	"net"
	"strconv"
	"strings"
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

// Envoy reports whether proxies of the role are Envoy processes (they get
// SDS secrets; proxyless applications read certificate files).
func (r Role) Envoy() bool { return r == RoleRouter || r == RoleGateway || r == RoleSidecar }

// ProxyID names the configuration a proxy receives: every proxy with the
// same ProxyID (the replicas of one service, say) gets the same one.
type ProxyID struct {
	Role Role `json:"role,omitempty"`
	// Namespace of the gateway or service.
	Namespace string `json:"namespace,omitempty"`
	// Name of the gateway (router, gateway) or of the service (sidecar,
	// grpc); empty for the rate-limit service.
	Name string `json:"name,omitempty"`
	// Inbound is a sidecar's own inbound port, which makes its
	// configuration per instance: "ADDRESS:PORT=APPPORT", Envoy listening
	// on ADDRESS:PORT for the instance's app on 127.0.0.1:APPPORT.
	Inbound string `json:"inbound,omitempty"`
}

func (p ProxyID) String() string {
	s := string(p.Role) + "/" + p.Namespace + "/" + p.Name
	if p.Inbound != "" {
		s += "/" + p.Inbound
	}
	return s
}

// ParseProxyID reads "ROLE/NAME" (namespace default), "ROLE/NAMESPACE/NAME"
// or, for a sidecar, "sidecar/NAMESPACE/NAME/ADDRESS:PORT=APPPORT".
func ParseProxyID(s string) (ProxyID, error) {
	parts := strings.Split(s, "/")
	var id ProxyID
	switch len(parts) {
	case 2:
		id = ProxyID{Role: Role(parts[0]), Namespace: "default", Name: parts[1]}
	case 3:
		id = ProxyID{Role: Role(parts[0]), Namespace: parts[1], Name: parts[2]}
	case 4:
		id = ProxyID{Role: Role(parts[0]), Namespace: parts[1], Name: parts[2], Inbound: parts[3]}
	default:
		return ProxyID{}, fmt.Errorf("node %q: want ROLE/NAME, ROLE/NAMESPACE/NAME or sidecar/NAMESPACE/NAME/ADDRESS:PORT=APPPORT", s)
	}
	if id.Inbound != "" {
		if id.Role != RoleSidecar {
			return ProxyID{}, fmt.Errorf("node %q: only a sidecar has an inbound port", s)
		}
		if _, err := ParseInbound(id.Inbound); err != nil {
			return ProxyID{}, fmt.Errorf("node %q: %w", s, err)
		}
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

// InboundPort is a sidecar's inbound port and the app port behind it.
type InboundPort struct {
	Address string
	Port    uint32
	AppPort uint32
}

// String is the canonical "ADDRESS:PORT=APPPORT".
func (i InboundPort) String() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(int(i.Port))) + "=" + strconv.Itoa(int(i.AppPort))
}

// ParseInbound reads "ADDRESS:PORT=APPPORT".
func ParseInbound(s string) (InboundPort, error) {
	hp, app, ok := strings.Cut(s, "=")
	if !ok {
		return InboundPort{}, fmt.Errorf("inbound %q: want ADDRESS:PORT=APPPORT", s)
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil || net.ParseIP(host) == nil {
		return InboundPort{}, fmt.Errorf("inbound %q: %q is not ip:port", s, hp)
	}
	p, err1 := strconv.ParseUint(port, 10, 16)
	a, err2 := strconv.ParseUint(app, 10, 16)
	if err1 != nil || err2 != nil || p == 0 || a == 0 {
		return InboundPort{}, fmt.Errorf("inbound %q: ports must be 1-65535", s)
	}
	return InboundPort{Address: host, Port: uint32(p), AppPort: uint32(a)}, nil
}
