package fallback_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/fallback"
)

// The fallback's localities join one priority below the primary's lowest,
// keeping their own order of priorities.
func TestMerge(t *testing.T) {
	primary := &ir.Cluster{Name: "a", Localities: []*ir.LocalityEndpoints{{Zone: "z1"}, {Zone: "z2", Priority: 1}}}
	fb := &ir.Cluster{Name: "b", Localities: []*ir.LocalityEndpoints{{Zone: "z1"}, {Zone: "z3", Priority: 1}}}
	fallback.Merge(primary, fb)
	var got []uint32
	for _, l := range primary.Localities {
		got = append(got, l.Priority)
	}
	if len(got) != 4 || got[2] != 2 || got[3] != 3 || primary.Fallback != "b" {
		t.Fatalf("priorities %v, fallback %q; want [0 1 2 3] and b", got, primary.Fallback)
	}
	if fb.Localities[1].Priority != 1 {
		t.Fatal("Merge changed the fallback's own cluster")
	}
}
