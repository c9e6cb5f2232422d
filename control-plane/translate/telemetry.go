package translate

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// CollectorService is the OpenTelemetry Collector's Service in a Gateway's
// namespace; when it has a port named CollectorPort, the Gateway's Envoy
// listeners trace to it (DESIGN.md §5: the OpenTelemetry SDK everywhere,
// one collector).
const (
	CollectorService = "otel-collector"
	CollectorPort    = "otlp-grpc"
	// TraceSamplePercent of the requests a Gateway starts traces for.
	TraceSamplePercent = 10
)

// tracing points every Gateway listener at the collector, if there is one.
func (t *translator) tracing() {
	for k, gw := range t.gws {
		s := t.svcs[svcKey{k.namespace, CollectorService}]
		if s == nil {
			continue
		}
		var cluster string
		for _, p := range s.ports {
			if p.name == CollectorPort {
				cluster = p.cluster.Name
			}
		}
		if cluster == "" {
			continue
		}
		for _, l := range gw.ports {
			// Spans are named after the Gateway resource ("gateway-ai").
			l.Tracing = &ir.Tracing{Cluster: cluster, ServiceName: "gateway-" + gw.obj.Name, SamplePercent: TraceSamplePercent}
		}
	}
}
