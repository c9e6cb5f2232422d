// Command webhooks is the webhooks service (services/webhooks): an
// account's endpoints and the signed delivery of its notifications.
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	"github.com/bulkhead-mesh/bulkhead/services/webhooks"
)

func main() {
	var o webhooks.Options
	platform.Main("webhooks", o.Flags, webhooks.Setup(&o))
}
