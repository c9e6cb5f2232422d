package translate

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Failing closed. A SecurityPolicy that cannot be accepted, with no
// earlier version of it in force (a cold start with a bad file, a policy
// never valid), must not leave what it protects open: its targets that no
// accepted SecurityPolicy covers are closed. A Gateway's routes answer 503
// in the API's error shape, naming the policy; a Service's servers require
// mTLS and refuse every call.

// closeSecurityTargets is the SecurityPolicy kind's closed step.
func (t *translator) closeSecurityTargets(k policyKind, runs []*policyRun) {
	for _, r := range runs {
		if r.inForce(k) == nil {
			t.closeTargets(r.p.key.Namespace+"/"+r.p.key.Name, r.targets)
		}
	}
	// Versions refused as input, with none accepted to stand in: their
	// targets as far as the refused version says.
	for _, key := range t.res.RefusedKeys() {
		if key.Kind != policies.SecurityPolicy || t.res.Has(key) {
			continue
		}
		p := policyObject{key: key, refs: t.res.RefusedVersion(key).TargetRefs}
		t.closeTargets(key.Namespace+"/"+key.Name, t.resolveTargets(k, p, func(string, string, bool) {}))
	}
}

func (t *translator) closeTargets(policy string, targets []*policies.Target) {
	reply := &ir.DirectResponse{StatusCode: http.StatusServiceUnavailable,
		Message: fmt.Sprintf("SecurityPolicy %s is not accepted and no version of it is in force: requests are refused until it is (see its status)", policy)}
	closeRoutes := func(routes []*ir.Route) {
		for _, rt := range routes {
			if !t.securedRoutes[rt] && rt.Closed == nil {
				rt.Closed = reply
			}
		}
	}
	for _, tg := range targets {
		switch policies.AttachOf(tg.Kind) {
		case policies.Service:
			key := tg.Namespace + "/" + tg.Name
			if t.inbound[key] != nil {
				continue // an accepted policy secures its servers
			}
			t.inbound[key] = &ir.InboundSecurity{Mode: ir.MTLSStrict, RBAC: &ir.RBAC{}, Source: policy + " (not accepted: every call is refused)"}
			for _, c := range tg.Clusters {
				if c.HTTP2 {
					c.TLS = &ir.UpstreamTLS{SANPrefix: workload.TrustDomainPrefix}
				}
			}
		case policies.Gateway:
			for _, l := range tg.Listeners {
				if t.securedListeners[l] {
					continue
				}
				for _, vh := range l.VirtualHosts {
					closeRoutes(vh.Routes)
				}
			}
		case policies.Route:
			var open []*ir.Route
			for _, rt := range tg.GatewayRoutes {
				if !t.onSecuredListener(rt) {
					open = append(open, rt)
				}
			}
			closeRoutes(open)
		}
	}
}

// markSecured records what an accepted SecurityPolicy in force covers.
func (t *translator) markSecured(targets []*policies.Target) {
	for _, tg := range targets {
		switch policies.AttachOf(tg.Kind) {
		case policies.Gateway:
			for _, l := range tg.Listeners {
				t.securedListeners[l] = true
			}
		case policies.Route:
			for _, rt := range tg.GatewayRoutes {
				t.securedRoutes[rt] = true
			}
		}
	}
}

func (t *translator) onSecuredListener(rt *ir.Route) bool {
	for l := range t.securedListeners {
		for _, vh := range l.VirtualHosts {
			for _, r := range vh.Routes {
				if r == rt {
					return true
				}
			}
		}
	}
	return false
}

// refusedVersions reports, on each object whose latest version was refused
// as input, why, and whether its last accepted version stays in force.
func (t *translator) refusedVersions() {
	for _, key := range t.res.RefusedKeys() {
		rf := t.res.RefusedVersion(key)
		msgs := make([]string, len(rf.Errors))
		for i, e := range rf.Errors {
			msgs[i] = e.Error()
		}
		why := strings.Join(msgs, "; ")
		if t.res.Has(key) {
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalid,
				Message: fmt.Sprintf("the version at %s is refused: %s; the last accepted version (%s) stays in force", rf.Origin, why, t.res.Origin(key))})
			continue
		}
		t.status.Set(key, rf.Origin, Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalid,
			Message: fmt.Sprintf("refused: %s; no version of it is accepted yet", why)})
	}
}
