package server

import (
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// MetadataKey is the key of the node metadata struct in which every proxy
// says who it is (envoy/README.md documents the contract):
//
//	"bulkhead": {"role": "grpc", "namespace": "default", "name": "chat"}
//
// or, flat, "bulkhead": "ROLE/NAMESPACE/NAME" (the rate-limit service,
// whose node metadata holds strings only); a sidecar also says which port
// it serves for which app port:
//
//	"inbound": {"address": "10.0.0.5", "port": 9000, "appPort": 19000}
const MetadataKey = "bulkhead"

// ProxyOf reads a node's identity from its metadata. The control plane
// never guesses it from the node id.
func ProxyOf(n *corev3.Node) (ir.ProxyID, error) {
	if n == nil {
		return ir.ProxyID{}, errors.New("the first request of the stream carries no node")
	}
	v := n.GetMetadata().GetFields()[MetadataKey]
	if spec := v.GetStringValue(); spec != "" {
		// The flat form, for clients whose metadata can only hold strings
		// (envoyproxy/ratelimit: CONFIG_GRPC_XDS_NODE_METADATA=bulkhead=ratelimit/default/ratelimit).
		id, err := ir.ParseProxyID(spec)
		if err != nil {
			return ir.ProxyID{}, fmt.Errorf("node %q: metadata %s: %w", n.GetId(), MetadataKey, err)
		}
		return id, nil
	}
	md := v.GetStructValue().GetFields()
	if md == nil {
		return ir.ProxyID{}, fmt.Errorf("node %q: metadata has no %q struct with role, namespace and name (see envoy/README.md)", n.GetId(), MetadataKey)
	}
	role := md["role"].GetStringValue()
	ns := md["namespace"].GetStringValue()
	name := md["name"].GetStringValue()
	if ns == "" {
		ns = "default"
	}
	spec := role + "/" + ns + "/" + name
	if in := md["inbound"].GetStructValue().GetFields(); in != nil {
		addr := in["address"].GetStringValue()
		if addr == "" {
			addr = "0.0.0.0"
		}
		spec += "/" + ir.InboundPort{Address: addr, Port: uint32(in["port"].GetNumberValue()), AppPort: uint32(in["appPort"].GetNumberValue())}.String()
	}
	id, err := ir.ParseProxyID(spec)
	if err != nil {
		return ir.ProxyID{}, fmt.Errorf("node %q: metadata %s: %w", n.GetId(), MetadataKey, err)
	}
	return id, nil
}

// nodeHash keys the snapshot cache by ProxyID: the replicas of one service
// share one snapshot. Streams of nodes without a valid identity are refused
// in the stream callbacks before the cache sees them.
type nodeHash struct{}

func (nodeHash) ID(n *corev3.Node) string {
	id, err := ProxyOf(n)
	if err != nil {
		return "invalid/" + n.GetId()
	}
	return id.String()
}
