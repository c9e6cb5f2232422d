package platform

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is a service's OpenTelemetry: metrics exported in the
// Prometheus format on /metrics (gRPC latency, rate and errors from the
// otelgrpc instrumentation, Go runtime and process CPU/memory, and the
// service's own instruments), traces to an OpenTelemetry collector when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, W3C trace context on every hop.
//
// Each service has its own providers (no globals), so several can run in
// one test process.
type Telemetry struct {
	Meter      metric.Meter
	Tracer     trace.Tracer
	meters     *sdkmetric.MeterProvider
	tracers    *sdktrace.TracerProvider
	registry   *prometheus.Registry
	propagator propagation.TextMapPropagator
}

func newTelemetry(ctx context.Context, cfg Config) (*Telemetry, error) {
	res := resource.NewSchemaless(
		attribute.String("service.name", cfg.Name),
		attribute.String("service.namespace", cfg.Namespace),
		attribute.String("service.instance.id", cfg.Instance),
	)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		te, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, err
		}
		// Sampled as OTEL_TRACES_SAMPLER says (default: parent-based, always).
		topts = append(topts, sdktrace.WithBatcher(te))
	} else {
		// Nothing would receive a recorded span: none is recorded. Spans
		// still carry their trace context (the logs' trace_id, the W3C
		// header to the next hop), at none of the cost of recording.
		topts = append(topts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	return &Telemetry{
		Meter:      mp.Meter("github.com/bulkhead-mesh/bulkhead/services/" + cfg.Name),
		Tracer:     tp.Tracer("github.com/bulkhead-mesh/bulkhead/services/" + cfg.Name),
		meters:     mp,
		tracers:    tp,
		registry:   reg,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

func (t *Telemetry) otelOptions() []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithMeterProvider(t.meters),
		otelgrpc.WithTracerProvider(t.tracers),
		otelgrpc.WithPropagators(t.propagator),
	}
}

// Propagator is the trace-context propagator, for the HTTP edge.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Handler serves the Prometheus exposition.
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{}))
	return mux
}

// Close flushes and stops the providers.
func (t *Telemetry) Close() error {
	ctx := context.Background()
	return errors.Join(t.tracers.Shutdown(ctx), t.meters.Shutdown(ctx))
}
