// Package vault holds what Vault is set up with for Bulkhead, used by
// `bulkhead up`, the tests and the kind deployment: one policy per service
// (policies/NAME.hcl, least privilege: its own secret only) bound to one
// AppRole per service.
package vault

import (
	"embed"
	"fmt"
)

//go:embed policies/*.hcl
var policies embed.FS

// Policy returns the HCL policy of a service.
func Policy(service string) (string, error) {
	b, err := policies.ReadFile("policies/" + service + ".hcl")
	if err != nil {
		return "", fmt.Errorf("vault: no policy for service %q (vault/policies/%s.hcl)", service, service)
	}
	return string(b), nil
}
