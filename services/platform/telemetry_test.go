package platform

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Without an exporter, spans are not recorded, but they still carry a
// trace id, kept across a hop.
func TestSpansNotRecordedWithoutAnExporter(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tel, err := newTelemetry(context.Background(), Config{Name: "test", Namespace: "default", Instance: "test-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	ctx, span := tel.Tracer.Start(context.Background(), "call")
	defer span.End()
	if span.IsRecording() || !span.SpanContext().HasTraceID() {
		t.Fatalf("recording %v, trace id %v: want not recorded, with a trace id", span.IsRecording(), span.SpanContext().TraceID())
	}
	carrier := propagation.MapCarrier{}
	tel.propagator.Inject(ctx, carrier)
	next := tel.propagator.Extract(context.Background(), carrier)
	_, child := tel.Tracer.Start(next, "next hop")
	defer child.End()
	if got := child.SpanContext().TraceID(); got != span.SpanContext().TraceID() || got == (trace.TraceID{}) {
		t.Fatalf("the next hop's trace id %v, want %v", got, span.SpanContext().TraceID())
	}
}
