package xds

import (
	"encoding/json"
	"fmt"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// dumpKeys names each type in dumps.
var dumpKeys = map[resourcev3.Type]string{
	resourcev3.ListenerType:        "listeners",
	resourcev3.RouteType:           "routes",
	resourcev3.ClusterType:         "clusters",
	resourcev3.EndpointType:        "endpoints",
	resourcev3.SecretType:          "secrets",
	resourcev3.RateLimitConfigType: "rateLimitConfigs",
}

// JSON renders the resources as one JSON document ({"clusters": [...],
// ...}), each resource in the protobuf JSON mapping, typed fields expanded.
func (r Resources) JSON() ([]byte, error) {
	doc := map[string][]json.RawMessage{}
	for _, typ := range Types {
		for _, res := range r[typ] {
			if typ == resourcev3.SecretType {
				// Keys never leave the control plane in a dump.
				b, _ := json.Marshal(map[string]any{"name": cachev3.GetResourceName(res), "content": "redacted"})
				doc[dumpKeys[typ]] = append(doc[dumpKeys[typ]], json.RawMessage(b))
				continue
			}
			b, err := protojson.MarshalOptions{UseProtoNames: false}.Marshal(res)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", dumpKeys[typ], err)
			}
			doc[dumpKeys[typ]] = append(doc[dumpKeys[typ]], json.RawMessage(b))
		}
	}
	// Re-encode through a generic value: protojson's whitespace is not
	// stable across versions, this is.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return nil, err
	}
	return json.MarshalIndent(generic, "", "  ")
}

// YAML renders the resources like JSON, as YAML.
func (r Resources) YAML() ([]byte, error) {
	b, err := r.JSON()
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(b)
}
