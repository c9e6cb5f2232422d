package jwt_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/jwt"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/policytest"
)

func TestValidate(t *testing.T) {
	env := &policytest.Env{ClusterList: []*ir.Cluster{policytest.Cluster("api", "default", 8080, false)}}
	ttl := v1alpha1.Duration("10m")
	p := &v1alpha1.SecurityPolicy{Spec: v1alpha1.SecurityPolicySpec{JWT: &v1alpha1.JWT{Providers: []v1alpha1.JWTProvider{
		{Name: "auth", Issuer: "bulkhead-auth", JWKS: v1alpha1.JWKSSource{BackendRef: v1alpha1.BackendRef{Name: "api", Port: 8080}, Path: "/.well-known/jwks.json", CacheDuration: &ttl}},
	}}}}
	p.Namespace, p.Name = "default", "tokens"
	var probs policytest.Problems
	v, ok := jwt.Feature.Validate(p, nil, env, probs.Report, probs.Failed)
	req := v.(*ir.JWTRequirement)
	if !ok || len(req.Providers) != 1 || req.Providers[0].JWKSURI != "http://api.default:8080/.well-known/jwks.json" || req.Providers[0].JWKSCluster != "api.default:8080" || req.Name != "default/tokens" {
		t.Fatalf("%+v %v %v", req, ok, probs)
	}
	never := v1alpha1.Duration("0s")
	p.Spec.JWT.Providers = append(p.Spec.JWT.Providers, v1alpha1.JWTProvider{Name: "b", JWKS: v1alpha1.JWKSSource{BackendRef: v1alpha1.BackendRef{Name: "api", Port: 8080}, Path: "keys", CacheDuration: &never}},
		v1alpha1.JWTProvider{Name: "c", JWKS: v1alpha1.JWKSSource{BackendRef: v1alpha1.BackendRef{Name: "keys", Port: 80}, Path: "/k"}})
	probs = nil
	_, ok = jwt.Feature.Validate(p, nil, env, probs.Report, probs.Failed)
	want := `spec.jwt.providers[1].jwks.cacheDuration: "0s" must be a positive duration
spec.jwt.providers[1].jwks.path: "keys" must start with /
spec.jwt.providers[2].jwks.backendRef: Service default/keys port 80 not found`
	if got := strings.Join(probs, "\n"); ok || got != want {
		t.Fatalf("problems:\n%s\nwant\n%s", got, want)
	}
}
