package policies_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

func TestReportErrPutsEachErrorAtItsField(t *testing.T) {
	var got []string
	report := func(field, msg string) { got = append(got, field+" | "+msg) }
	policies.ReportErr(report, "spec.retry", errors.Join(
		errors.New("backoff.maxInterval: 100ms is less than baseInterval 1s"),
		errors.New("rules[1].principals[0]: \"x\": not a SPIFFE ID"),
		errors.New("set delay, abort or both"),
		errors.New("Invalid value: 3: must be odd"), // not a path: a sentence
	))
	want := []string{
		"spec.retry.backoff.maxInterval | 100ms is less than baseInterval 1s",
		`spec.retry.rules[1].principals[0] | "x": not a SPIFFE ID`,
		"spec.retry | set delay, abort or both",
		"spec.retry | Invalid value: 3: must be odd",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAttach(t *testing.T) {
	for kind, want := range map[string]policies.Attach{"Service": policies.Service, "HTTPRoute": policies.Route, "GRPCRoute": policies.Route, "Gateway": policies.Gateway, "Pod": 0} {
		if got := policies.AttachOf(kind); got != want {
			t.Errorf("AttachOf(%s) = %v; want %v", kind, got, want)
		}
	}
	if s := (policies.Service | policies.Gateway).String(); s != "Service, Gateway" {
		t.Errorf("String = %q", s)
	}
}

func TestDefineRefusesWithTheFeaturesWords(t *testing.T) {
	f := policies.Define[*v1alpha1.BackendPolicy, v1alpha1.Retry, int]{
		Meta:  policies.Meta{Name: "retry", Kind: policies.BackendPolicy, Attaches: policies.Service},
		Field: func(p *v1alpha1.BackendPolicy) *v1alpha1.Retry { return p.Spec.Retry },
	}
	var got string
	f.Refuse(&policies.Target{Kind: "Gateway", Field: "spec.targetRefs[2]"}, func(field, msg string) { got = field + ": " + msg })
	if got != "spec.targetRefs[2]: retry cannot apply to a Gateway (it attaches to: Service)" {
		t.Fatalf("default refusal: %q", got)
	}
	f.Refusal = policies.GatewayOnly("retry", "applied")
	f.Refuse(&policies.Target{Kind: "Service", Field: "spec.targetRefs[0]"}, func(field, msg string) { got = field + ": " + msg })
	if got != "spec.targetRefs[0]: retry is applied by Envoy Gateways; a Service cannot apply it (target the Gateway)" {
		t.Fatalf("refusal: %q", got)
	}
	if f.Present(&v1alpha1.BackendPolicy{}) || !f.Present(&v1alpha1.BackendPolicy{Spec: v1alpha1.BackendPolicySpec{Retry: &v1alpha1.Retry{}}}) {
		t.Fatal("Present does not follow the field")
	}
	if f.Present(&v1alpha1.SecurityPolicy{}) {
		t.Fatal("a feature is present in a policy of another kind")
	}
}
