package server

import (
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// ProxyOf reads a node's identity from its metadata (workload.MetadataKey
// says how; envoy/README.md documents it). The control plane never guesses
// it from the node id.
func ProxyOf(n *corev3.Node) (workload.ProxyID, error) {
	if n == nil {
		return workload.ProxyID{}, errors.New("the first request of the stream carries no node")
	}
	v := n.GetMetadata().GetFields()[workload.MetadataKey]
	if spec := v.GetStringValue(); spec != "" {
		// The flat form, for clients whose metadata can only hold strings
		// (envoyproxy/ratelimit: CONFIG_GRPC_XDS_NODE_METADATA=bulkhead=ratelimit/default/ratelimit).
		id, err := workload.ParseProxyID(spec)
		if err != nil {
			return workload.ProxyID{}, fmt.Errorf("node %q: metadata %s: %w", n.GetId(), workload.MetadataKey, err)
		}
		return id, nil
	}
	md := v.GetStructValue().GetFields()
	if md == nil {
		return workload.ProxyID{}, fmt.Errorf("node %q: metadata has no %q struct with role, namespace and name (see envoy/README.md)", n.GetId(), workload.MetadataKey)
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
		spec += "/" + workload.InboundPort{Address: addr, Port: uint32(in["port"].GetNumberValue()), AppPort: uint32(in["appPort"].GetNumberValue())}.String()
	}
	id, err := workload.ParseProxyID(spec)
	if err != nil {
		return workload.ProxyID{}, fmt.Errorf("node %q: metadata %s: %w", n.GetId(), workload.MetadataKey, err)
	}
	return id, nil
}

// DeclaredAccount is the service account a proxyless node declares in its
// metadata ("serviceAccount"), "" when none (see workload.Account).
func DeclaredAccount(n *corev3.Node) string {
	return n.GetMetadata().GetFields()[workload.MetadataKey].GetStructValue().GetFields()["serviceAccount"].GetStringValue()
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
