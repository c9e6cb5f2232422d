// Command models is the model registry service (services/models).
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/models"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func main() {
	var o models.Options
	platform.Main("models", o.Flags, models.Setup(&o))
}
