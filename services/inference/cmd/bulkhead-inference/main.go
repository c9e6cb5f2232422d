// Command inference is the inference service (services/inference).
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func main() {
	var o inference.Options
	platform.Main("inference", o.Flags, inference.Setup(&o))
}
