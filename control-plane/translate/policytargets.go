package translate

import (
	"fmt"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// checkTargets resolves targetRefs to existing objects of the policy's
// namespace.
func (t *translator) checkTargets(key resource.Key, ns string, refs []v1alpha1.PolicyTargetReference) []string {
	var problems []string
	report := t.reporter(key, &problems)
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
			report(field, fmt.Sprintf("%s %s/%s not found", ref.Kind, ns, name))
		}
	}
	return problems
}

// reporter returns how a policy's problems are recorded: in the errors
// (file, object, field) and in problems, which its Accepted condition lists.
func (t *translator) reporter(key resource.Key, problems *[]string) func(field, msg string) {
	return func(field, msg string) {
		t.fail(key, field, "%s", msg)
		*problems = append(*problems, field+": "+msg)
	}
}

// gatewayOnly reports every target that is not a Gateway: feature is
// applied by the Gateways' Envoy (verb: "applied", "enforced").
func gatewayOnly(refs []v1alpha1.PolicyTargetReference, feature, verb string, report func(field, msg string)) bool {
	ok := true
	for i, ref := range refs {
		if ref.Kind != "Gateway" {
			report(fmt.Sprintf("spec.targetRefs[%d]", i), fmt.Sprintf("%s is %s by Envoy Gateways; a %s cannot apply it (target the Gateway)", feature, verb, ref.Kind))
			ok = false
		}
	}
	return ok
}

func (t *translator) policyAccepted(key resource.Key, problems []string, pending string) {
	origin := t.res.Origin(key)
	if len(problems) > 0 {
		// TargetNotFound when that is the only trouble, Invalid otherwise.
		reason := "TargetNotFound"
		for _, p := range problems {
			if !strings.HasPrefix(p, "spec.targetRefs[") || !strings.HasSuffix(p, " not found") {
				reason = ReasonInvalid
			}
		}
		t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "False", Reason: reason, Message: strings.Join(problems, "; ")})
		return
	}
	t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: "valid; " + pending})
}
