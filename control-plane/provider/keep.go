package provider

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// LastAccepted keeps, across snapshots, the last version of each object
// that was accepted as input, and puts it back in a snapshot whose new
// version of the object was refused (resource.Refused): as the API server
// refuses an invalid write and keeps the stored object, a bad edit to a
// file never removes what the object's last good version configured. A
// deleted object is gone. The zero value is ready; it is not safe for
// concurrent use.
type LastAccepted struct {
	kept map[resource.Key]kept
}

type kept struct {
	obj    client.Object
	origin resource.Origin
}

// Apply completes res with the last accepted version of every refused
// object (its origin says where that version was read), then remembers
// what res now holds.
func (l *LastAccepted) Apply(res *resource.Resources) {
	for _, k := range res.RefusedKeys() {
		if res.Has(k) {
			continue
		}
		if prev, ok := l.kept[k]; ok {
			_ = res.Add(k, prev.obj.DeepCopyObject().(client.Object), prev.origin)
		}
	}
	res.Sort()
	next := map[resource.Key]kept{}
	for _, o := range res.Objects() {
		next[o.Key] = kept{obj: o.Obj.DeepCopyObject().(client.Object), origin: res.Origin(o.Key)}
	}
	l.kept = next
}
