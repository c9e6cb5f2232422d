package status_test

import (
	"errors"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

const input = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai}
spec:
  gatewayClassName: bulkhead
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat}
spec:
  parentRefs: [{name: ai}]
  rules: [{backendRefs: [{name: echo, port: 9000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, generation: 3}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo, generation: 7}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{backendRefs: [{name: echo, port: 9000}]}]
---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: lost}
spec:
  targetRefs: [{group: "", kind: Service, name: ghost}]
  retry: {numRetries: 1, retryOn: [unavailable]}
`

func translated(t *testing.T) *translate.Result {
	t.Helper()
	res := &resource.Resources{}
	if err := resource.Decode(res, "in.yaml", []byte(input)); err != nil {
		t.Fatal(err)
	}
	res.Sort()
	return translate.Translate(res)
}

var caller = workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"}

// published is what the server published to caller: listener version L2.
var published = map[resourcev3.Type]string{resourcev3.ListenerType: "L2", resourcev3.RouteType: "R1"}

func node(id string, acked, nacked string) server.NodeState {
	return server.NodeState{NodeID: id, Proxy: caller.String(), Connected: true, Types: map[string]*server.TypeState{
		resourcev3.ListenerType: {Acked: acked, Nacked: nacked, NackError: map[bool]string{true: "unsupported filter"}[nacked != ""], At: time.Unix(1, 0)},
		resourcev3.RouteType:    {Acked: "R1"},
	}}
}

func condition(t *testing.T, rep status.Report, kind, name, typ string) status.Condition {
	t.Helper()
	for _, o := range rep.Objects {
		if o.Kind == kind && o.Name == name {
			for _, c := range o.Conditions {
				if c.Type == typ {
					return c
				}
			}
		}
	}
	t.Fatalf("%s %s has no %s condition: %+v", kind, name, typ, rep.Objects)
	return status.Condition{}
}

func TestProgrammed(t *testing.T) {
	r := translated(t)
	rec := []server.ProxyRecord{{ID: caller, Versions: published}}
	for _, tc := range []struct {
		name    string
		records []server.ProxyRecord
		nodes   []server.NodeState
		want    string // status reason
	}{
		{"no proxy connected", nil, nil, "False NoProxyConnected"},
		{"every node ACKed", rec, []server.NodeState{node("a", "L2", ""), node("b", "L2", "")}, "True Programmed"},
		{"a node has not answered yet", rec, []server.NodeState{node("a", "L2", ""), node("b", "L1", "")}, "Unknown Pending"},
		{"a node NACKed", rec, []server.NodeState{node("a", "L2", ""), node("b", "L1", "L2")}, "False RejectedByProxy"},
		{"not publishable", []server.ProxyRecord{{ID: caller, Versions: published, Pending: errors.New("listener: bad")}}, []server.NodeState{node("a", "L2", "")}, "False Invalid"},
		{"a NACK of an older version is history", rec, []server.NodeState{node("a", "L2", "L1")}, "True Programmed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := status.Compute(r, tc.records, tc.nodes)
			c := condition(t, rep, "GRPCRoute", "echo", status.CondProgrammed)
			if got := c.Status + " " + c.Reason; got != tc.want {
				t.Fatalf("Programmed = %s (%s); want %s", got, c.Message, tc.want)
			}
			// An object that is not accepted is never programmed.
			if c := condition(t, rep, "BackendPolicy", "lost", status.CondProgrammed); c.Status != "False" || c.Reason != "Invalid" {
				t.Fatalf("Programmed of a refused policy: %+v", c)
			}
		})
	}
}

func TestReportPerProxyAndObject(t *testing.T) {
	r := translated(t)
	rep := status.Compute(r, []server.ProxyRecord{{ID: caller, Versions: published, Warnings: []error{errors.New("route x left out")}}},
		[]server.NodeState{node("a", "L2", ""), node("b", "L1", "L2")})
	if len(rep.Proxies) != 1 {
		t.Fatalf("proxies %+v", rep.Proxies)
	}
	p := rep.Proxies[0]
	if p.Proxy != "grpc/default/caller" || p.InSync != 1 || len(p.Nodes) != 2 || p.Published["listener"] != "L2" ||
		p.Rejected != "node b rejected listener version L2: unsupported filter" {
		t.Fatalf("proxy %+v", p)
	}
	if b := p.Nodes[1]; b.InSync || len(b.Types) != 2 || b.Types[0].Type != "listener" || b.Types[0].Nacked != "L2" || b.Types[0].Published != "L2" {
		t.Fatalf("node b %+v", b)
	}
	var sawWarning bool
	for _, pr := range rep.Problems {
		sawWarning = sawWarning || pr == "route x left out"
	}
	if !sawWarning || len(rep.Problems) < 2 {
		t.Fatalf("problems %v; want the translation error and the route left out", rep.Problems)
	}
	// Conditions are observed at the generation that was translated.
	for _, o := range rep.Objects {
		if o.Kind == "GRPCRoute" && o.ObservedGeneration != 7 {
			t.Fatalf("GRPCRoute observedGeneration %d; want 7", o.ObservedGeneration)
		}
	}
	// The translation's own statuses are not changed by a report.
	if o := r.Status.Objects()[0]; len(o.Conditions) > 2 {
		t.Fatalf("Compute appended to the translation's statuses: %+v", o)
	}
}

// Programmed asks only the proxies an object reaches: a NACK of a
// proxyless client does not touch a route only the ai Gateway carries,
// and that route is not programmed until a node of the ai Gateway runs it.
func TestProgrammedPerObject(t *testing.T) {
	r := translated(t)
	ai := workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}
	records := []server.ProxyRecord{{ID: caller, Versions: published}, {ID: ai, Versions: published}}
	gwNode := func(acked string) server.NodeState {
		n := node("envoy-1", acked, "")
		n.Proxy = ai.String()
		return n
	}
	// Only a proxyless client, which NACKed.
	rep := status.Compute(r, records, []server.NodeState{node("a", "L1", "L2")})
	if c := condition(t, rep, "GRPCRoute", "echo", status.CondProgrammed); c.Reason != status.ReasonRejectedByProxy {
		t.Fatalf("the mesh route: %+v; want RejectedByProxy", c)
	}
	c := condition(t, rep, "HTTPRoute", "chat", status.CondProgrammed)
	if c.Status != "False" || c.Reason != status.ReasonNoProxyConnected || c.Message != "no node connected for Gateway default/ai" {
		t.Fatalf("the Gateway route without a Gateway node: %+v; want False NoProxyConnected naming the Gateway", c)
	}
	// The Gateway's node runs it: the route is programmed, whatever the
	// proxyless client did.
	rep = status.Compute(r, records, []server.NodeState{node("a", "L1", "L2"), gwNode("L2")})
	if c := condition(t, rep, "HTTPRoute", "chat", status.CondProgrammed); c.Status != "True" {
		t.Fatalf("the Gateway route with its Gateway in sync: %+v", c)
	}
	if c := condition(t, rep, "Gateway", "ai", status.CondProgrammed); c.Status != "True" {
		t.Fatalf("the Gateway: %+v", c)
	}
}
