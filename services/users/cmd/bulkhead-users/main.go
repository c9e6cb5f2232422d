// Command users is the accounts and quota service (services/users).
package main

import (
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	"github.com/bulkhead-mesh/bulkhead/services/users"
)

func main() { platform.Main("users", nil, users.Setup()) }
