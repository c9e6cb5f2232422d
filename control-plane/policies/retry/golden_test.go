package retry_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
)

// The feature's own cases through both golden layers: testdata/NAME.in.yaml
// → NAME.ir.yaml → NAME.xds.yaml (make golden rewrites them).
func TestGolden(t *testing.T) { golden.Cases(t) }
