package resource

import (
	"fmt"
	"reflect"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
)

// Refused is a version of an object that could not be accepted as input:
// it does not decode strictly, or it breaks its CRD's admission rules,
// which the API server would have refused. The snapshot then holds the
// object's last accepted version instead, when the provider has one.
type Refused struct {
	// Origin is where the refused version was read.
	Origin Origin
	// Errors say why, each naming the field.
	Errors []error
	// TargetRefs are a policy's targetRefs as far as a lenient reading of
	// the refused version gives them: what must fail closed when no
	// accepted version exists (a SecurityPolicy's targets).
	TargetRefs []v1alpha1.PolicyTargetReference
}

// Refuse records a refused version of the object with key k.
func (r *Resources) Refuse(k Key, rf *Refused) {
	if r.refused == nil {
		r.refused = map[Key]*Refused{}
	}
	if prev := r.refused[k]; prev != nil {
		prev.Errors = append(prev.Errors, rf.Errors...)
		return
	}
	r.refused[k] = rf
}

// RefusedVersion is the refused version of the object with key k (nil:
// none).
func (r *Resources) RefusedVersion(k Key) *Refused { return r.refused[k] }

// RefusedKeys lists the objects with a refused version, sorted.
func (r *Resources) RefusedKeys() []Key {
	out := make([]Key, 0, len(r.refused))
	for k := range r.refused {
		out = append(out, k)
	}
	sortKeys(out)
	return out
}

// Object is one object of the snapshot with its key.
type Object struct {
	Key Key
	Obj client.Object
}

// Objects lists every object of the snapshot, sorted by key.
func (r *Resources) Objects() []Object {
	var out []Object
	listed := map[string]bool{} // a kind read from two versions has one list
	for _, k := range kinds {
		if listed[k.kind] {
			continue
		}
		listed[k.kind] = true
		k.each(r, func(o client.Object) { out = append(out, Object{Key: KeyOf(k.kind, o), Obj: o}) })
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i].Key, out[j].Key) })
	return out
}

// Has reports whether the snapshot holds an object with key k.
func (r *Resources) Has(k Key) bool {
	_, ok := r.origins[k]
	return ok
}

// Add puts an object in the snapshot, read at origin (call Sort after).
func (r *Resources) Add(k Key, obj client.Object, o Origin) error {
	for _, spec := range kinds {
		if spec.kind == k.Kind && reflect.TypeOf(spec.newObj()) == reflect.TypeOf(obj) {
			spec.add(r, obj)
			r.SetOrigin(k, o)
			return nil
		}
	}
	return fmt.Errorf("resource: %T is not a kind the control plane reads (as %s)", obj, k.Kind)
}

func keyLess(a, b Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func sortKeys(keys []Key) { sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) }) }
