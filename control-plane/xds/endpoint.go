package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// loadAssignment builds the EDS resource of a cluster. A cluster with no
// endpoint still gets one (empty), so clients learn that it has none
// instead of waiting for it.
func loadAssignment(c *ir.Cluster) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
	for _, l := range c.Localities {
		lle := &endpointv3.LocalityLbEndpoints{
			Locality: &corev3.Locality{Region: l.Region, Zone: l.Zone, SubZone: l.SubZone},
			// grpc-go ignores localities without a weight.
			LoadBalancingWeight: wrapperspb.UInt32(max(l.Weight, 1)),
			Priority:            l.Priority,
		}
		for _, e := range l.Endpoints {
			lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       e.Address,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
					}}},
				}},
				HealthStatus:        healthStatus(e.Health),
				LoadBalancingWeight: wrapperspb.UInt32(max(e.Weight, 1)),
			})
		}
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	return cla
}

func healthStatus(h ir.Health) corev3.HealthStatus {
	switch h {
	case ir.HealthUnhealthy:
		return corev3.HealthStatus_UNHEALTHY
	case ir.HealthDraining:
		return corev3.HealthStatus_DRAINING
	default:
		return corev3.HealthStatus_HEALTHY
	}
}
