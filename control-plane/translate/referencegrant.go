package translate

import (
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// granted reports whether a ReferenceGrant in namespace to lets objects
// of kind fromKind (group gateway.networking.k8s.io) in namespace from
// refer to the core Service name there (Gateway API: a grant lists the
// "from" it trusts and the "to" it exposes; a "to" without a name exposes
// every object of its kind).
func (t *translator) granted(fromKind, from, to, name string) bool {
	for _, g := range t.res.ReferenceGrants {
		if g.Namespace != to {
			continue
		}
		fromOK := false
		for _, f := range g.Spec.From {
			if string(f.Group) == gwapiv1.GroupName && string(f.Kind) == fromKind && string(f.Namespace) == from {
				fromOK = true
			}
		}
		if !fromOK {
			continue
		}
		for _, to := range g.Spec.To {
			if string(to.Group) == "" && string(to.Kind) == "Service" && (to.Name == nil || string(*to.Name) == name) {
				return true
			}
		}
	}
	return false
}
