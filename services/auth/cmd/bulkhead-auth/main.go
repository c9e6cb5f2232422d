// Command auth is the auth service (services/auth); with --cache-only, its
// identity fallback pool.
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/auth"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func main() {
	var o auth.Options
	platform.Main("auth", o.Flags, auth.Setup(&o))
}
