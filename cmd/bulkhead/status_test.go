package main

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
)

// bulkhead status prints the status model as it is: conditions per
// object, and per proxy its nodes, how many run what was published, and
// why not.
func TestPrintStatus(t *testing.T) {
	var b strings.Builder
	printStatus(&b, status.Report{
		Objects: []status.Object{{Kind: "GRPCRoute", Namespace: "default", Name: "echo", Conditions: []translate.Condition{
			{Type: "Accepted", Status: "True", Reason: "Accepted"},
			{Type: "Programmed", Status: "False", Reason: "RejectedByProxy", Message: "node b rejected listener version L2: unsupported filter"},
		}}},
		Proxies: []status.Proxy{{Proxy: "grpc/default/caller", InSync: 1, Rejected: "node b rejected listener version L2: unsupported filter",
			Nodes: []status.Node{{NodeID: "a", InSync: true}, {NodeID: "b"}}}},
		Problems: []string{"in.yaml:3: BackendPolicy default/x: spec.retry: bad"},
	})
	out := b.String()
	for _, want := range []string{
		"GRPCRoute  default/echo    True      False       Programmed: node b rejected listener version L2: unsupported filter",
		"grpc/default/caller  2      1        node b rejected listener version L2",
		"1 problem(s):\n  in.yaml:3: BackendPolicy default/x: spec.retry: bad",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
