// Package provider is the boundary between where the input comes from (a
// directory of YAML in universal mode, Kubernetes informers) and
// translation: a provider sends whole, consistent snapshots.
package provider

import (
	"context"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// Update is one consistent snapshot of the input.
type Update struct {
	Resources *resource.Resources
	// Err lists what could not be read (each problem names its file and
	// object); the objects that could be read are in Resources.
	Err error
}

// Provider sends an Update at start and after every change of its input,
// until ctx ends.
type Provider interface {
	Run(ctx context.Context, out chan<- Update) error
}
