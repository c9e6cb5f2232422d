package xds_test

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
)

// The same configuration has the same versions every time it is built:
// they are hashes of its bytes, which replicas compare (a node connected to
// one replica is judged by the leader against its own versions) and which
// decide whether a snapshot is pushed again. Maps inside packed messages
// (an RBAC filter's policies, a route's per-filter configs) are where
// non-deterministic bytes would come from: every IR golden has them.
func TestVersionsAreStable(t *testing.T) {
	inputs, err := filepath.Glob("../translate/testdata/*.ir.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no IR goldens: %v", err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		var input golden.Output
		if err := yaml.Unmarshal(data, &input); err != nil {
			t.Fatal(err)
		}
		for _, cfg := range input.Proxies {
			var first map[string]string
			for i := range 20 {
				res, err := xds.Build(cfg)
				if err != nil {
					t.Fatalf("%s %s: %v", in, cfg.Proxy, err)
				}
				_, versions, err := res.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for typ, v := range versions {
					got[xds.TypeName(typ)] = v
				}
				if i == 0 {
					first = got
					continue
				}
				for typ, v := range got {
					if first[typ] != v {
						t.Fatalf("%s, proxy %s: %s version %s, then %s for the same configuration", filepath.Base(in), cfg.Proxy, typ, first[typ], v)
					}
				}
			}
		}
	}
}
