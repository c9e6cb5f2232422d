// Command api is the public HTTP API (services/api).
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/api"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func main() {
	var o api.Options
	platform.Main("api", o.Flags, api.Setup(&o))
}
