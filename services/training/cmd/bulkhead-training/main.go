// Command training is the training service (services/training): the
// fine-tuning API, and (--worker, the default) a fine-tuning worker.
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	"github.com/bulkhead-mesh/bulkhead/services/training"
)

func main() {
	var o training.Options
	platform.Main("training", o.Flags, training.Setup(&o))
}
