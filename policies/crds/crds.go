// Package crds embeds the generated CRDs of the policy kinds, so that
// universal mode validates policies with the very OpenAPI and CEL rules the
// Kubernetes API server applies at admission.
package crds

import "embed"

// FS holds mesh.bulkhead.dev_*.yaml.
//
//go:embed *.yaml
var FS embed.FS
