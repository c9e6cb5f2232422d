package translate

import (
	"fmt"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// NotTranslatedYet is the reason of the Programmed condition of policies
// that are validated but not yet turned into proxy configuration.
const NotTranslatedYet = "NotTranslatedYet"

// rateLimitAndSecurityPolicies validates RateLimitPolicies and
// SecurityPolicies (targets exist, backends exist) and sets their Accepted
// condition. Their translation comes with the edge (#6) and zero-trust (#5)
// issues; until then the status says so.
func (t *translator) rateLimitAndSecurityPolicies() {
	for _, p := range t.res.RateLimitPolicies {
		key := resource.KeyOf("RateLimitPolicy", p)
		problems := t.checkTargets(key, p.Namespace, p.Spec.TargetRefs)
		t.policyAccepted(key, problems, "enforcement arrives with the edge issue (#6)")
	}
	for _, p := range t.res.SecurityPolicies {
		key := resource.KeyOf("SecurityPolicy", p)
		problems := t.checkTargets(key, p.Namespace, p.Spec.TargetRefs)
		check := func(field string, ref *v1alpha1.BackendRef) {
			if ref == nil {
				return
			}
			s := t.svcs[svcKey{p.Namespace, ref.Name}]
			if s == nil || s.port(uint32(ref.Port)) == nil {
				msg := fmt.Sprintf("Service %s/%s port %d not found", p.Namespace, ref.Name, ref.Port)
				t.fail(key, field, "%s", msg)
				problems = append(problems, field+": "+msg)
			}
		}
		if ea := p.Spec.ExtAuth; ea != nil {
			check("spec.extAuth.backendRef", &ea.BackendRef)
			check("spec.extAuth.fallback", ea.Fallback)
		}
		if j := p.Spec.JWT; j != nil {
			for i := range j.Providers {
				check(fmt.Sprintf("spec.jwt.providers[%d].jwks.backendRef", i), &j.Providers[i].JWKS.BackendRef)
			}
		}
		t.policyAccepted(key, problems, "enforcement arrives with the zero-trust (#5) and edge (#6) issues")
	}
}

// checkTargets resolves targetRefs to existing objects of the policy's
// namespace.
func (t *translator) checkTargets(key resource.Key, ns string, refs []v1alpha1.PolicyTargetReference) []string {
	var problems []string
	for i, ref := range refs {
		field := fmt.Sprintf("spec.targetRefs[%d]", i)
		name := string(ref.Name)
		found := false
		switch ref.Kind {
		case "Service":
			found = t.svcs[svcKey{ns, name}] != nil
		case "Gateway":
			found = t.gws[svcKey{ns, name}] != nil
		case "HTTPRoute", "GRPCRoute":
			_, found = t.routeIndex[resource.Key{Kind: string(ref.Kind), Namespace: ns, Name: name}]
		}
		if !found {
			msg := fmt.Sprintf("%s %s/%s not found", ref.Kind, ns, name)
			t.fail(key, field, "%s", msg)
			problems = append(problems, field+": "+msg)
		}
	}
	return problems
}

func (t *translator) policyAccepted(key resource.Key, problems []string, pending string) {
	origin := t.res.Origin(key)
	if len(problems) > 0 {
		t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "False", Reason: "TargetNotFound", Message: strings.Join(problems, "; ")})
		return
	}
	t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: "valid; " + pending})
}
