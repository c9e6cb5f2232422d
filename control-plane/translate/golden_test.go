package translate_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
)

// Layer 1 of the goldens: input resources → IR and statuses. These are the
// cases that combine features (a platform-like mesh, precedence between
// policies, routes and Gateways); each policy feature has its own cases in
// its folder (control-plane/policies/NAME/testdata), through both layers.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.in.yaml: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			golden.Translation(t, in, filepath.Join("testdata", name+".ir.yaml"))
		})
	}
}
