package extauth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/extauth"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/policytest"
)

func validate(t *testing.T, env *policytest.Env, ea v1alpha1.ExtAuth) (*ir.ExtAuthz, bool, policytest.Problems) {
	t.Helper()
	p := &v1alpha1.SecurityPolicy{Spec: v1alpha1.SecurityPolicySpec{ExtAuth: &ea}}
	p.Namespace, p.Name = "default", "ai"
	var probs policytest.Problems
	v, ok := extauth.Feature.Validate(p, nil, env, probs.Report, probs.Failed)
	a, _ := v.(*ir.ExtAuthz)
	return a, ok, probs
}

func TestValidate(t *testing.T) {
	auth := policytest.Cluster("auth", "default", 9000, true)
	auth.Fallback = "auth-cache.default:9000"
	env := &policytest.Env{ClusterList: []*ir.Cluster{auth, policytest.Cluster("auth-cache", "default", 9000, true), policytest.Cluster("other", "default", 9000, true)}}

	a, ok, probs := validate(t, env, v1alpha1.ExtAuth{BackendRef: v1alpha1.BackendRef{Name: "auth", Port: 9000}, Fallback: &v1alpha1.BackendRef{Name: "auth-cache", Port: 9000}})
	if !ok || len(probs) != 0 || a.Cluster != "auth.default:9000" || a.Timeout.Std() != 250*time.Millisecond || a.FailOpen || a.Source != "default/ai" {
		t.Fatalf("%+v %v %v; want auth's cluster, 250ms, fail closed", a, ok, probs)
	}
	bad := v1alpha1.Duration("-1s")
	_, ok, probs = validate(t, env, v1alpha1.ExtAuth{BackendRef: v1alpha1.BackendRef{Name: "auth", Port: 9000}, Fallback: &v1alpha1.BackendRef{Name: "other", Port: 9000}, Timeout: &bad})
	got := strings.Join(probs, "\n")
	if ok || !strings.Contains(got, `spec.extAuth: timeout: "-1s" must be a positive duration`) || !strings.Contains(got, `spec.extAuth: fallback: the failover of auth.default:9000 is its BackendPolicy's fallback; declare other.default:9000 there`) {
		t.Fatalf("problems:\n%s", got)
	}
	_, ok, probs = validate(t, env, v1alpha1.ExtAuth{BackendRef: v1alpha1.BackendRef{Name: "nobody", Port: 9000}, Fallback: &v1alpha1.BackendRef{Name: "nothing", Port: 1}})
	if got := strings.Join(probs, "\n"); ok || got != "spec.extAuth.backendRef: Service default/nobody port 9000 not found\nspec.extAuth.fallback: Service default/nothing port 1 not found" {
		t.Fatalf("problems:\n%s", got)
	}
}

func TestApplyOnEveryListenerOfTheGateway(t *testing.T) {
	a := &ir.ExtAuthz{Cluster: "auth.default:9000"}
	l1, l2 := &ir.Listener{Name: "default/ai/8080"}, &ir.Listener{Name: "default/ai/8443"}
	extauth.Feature.ApplyTo(a, &policies.Target{Kind: "Gateway", Listeners: []*ir.Listener{l1, l2}}, &policytest.Env{})
	if l1.ExtAuthz != a || l2.ExtAuthz != a {
		t.Fatal("not on every listener")
	}
}
