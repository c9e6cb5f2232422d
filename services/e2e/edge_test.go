package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authzv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// gatewayFilter unpacks the HTTP filter named name of the ai gateway's
// listener (built from res) into cfg; false when there is none.
func gatewayFilter(t *testing.T, res xds.Resources, name string, cfg proto.Message) bool {
	t.Helper()
	for _, l := range res[resourcev3.ListenerType] {
		hcm := &hcmv3.HttpConnectionManager{}
		if err := l.(*listenerv3.Listener).GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		for _, f := range hcm.GetHttpFilters() {
			if f.GetName() == name {
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				return true
			}
		}
	}
	return false
}

// gatewayExtAuthz is the ext_authz filter the control plane generates for
// the ai gateway from the platform's policies.
func gatewayExtAuthz(t *testing.T) *extauthzv3.ExtAuthz {
	t.Helper()
	r := controlplane.Offline(filepath.Join(stack.RepoRoot(), "policies", "mesh"))
	res, err := xds.Build(r.Config(workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}))
	if err != nil {
		t.Fatal(err)
	}
	ea := &extauthzv3.ExtAuthz{}
	if !gatewayFilter(t, res, "envoy.filters.http.ext_authz", ea) {
		t.Fatal("the ai gateway has no ext_authz filter")
	}
	return ea
}

// gatewayRoutes is the ai gateway's route configuration, generated from
// the platform's policies.
func gatewayRoutes(t *testing.T) *routev3.RouteConfiguration {
	t.Helper()
	r := controlplane.Offline(filepath.Join(stack.RepoRoot(), "policies", "mesh"))
	res, err := xds.Build(r.Config(workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}))
	if err != nil {
		t.Fatal(err)
	}
	return res[resourcev3.RouteType][0].(*routev3.RouteConfiguration)
}

// checkRequestFor is the CheckRequest Envoy sends for a request with these
// headers under that filter: the pseudo-headers, and the headers the
// filter allows.
func checkRequestFor(ea *extauthzv3.ExtAuthz, method, path string, headers map[string]string) *authzv3.CheckRequest {
	sent := map[string]string{":method": method, ":path": path, ":authority": "api.bulkhead.local"}
	for k, v := range headers {
		for _, p := range ea.GetAllowedHeaders().GetPatterns() {
			if strings.EqualFold(p.GetExact(), k) {
				sent[strings.ToLower(k)] = v
			}
		}
	}
	return &authzv3.CheckRequest{Attributes: &authzv3.AttributeContext{Request: &authzv3.AttributeContext_Request{
		Http: &authzv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: "api.bulkhead.local", Headers: sent},
	}}}
}

// The gateways' ext_authz against the real auth service: the CheckRequest
// the generated filter would send (only the headers it allows), sent as
// the ai gateway's identity over the mesh to the cluster the filter names:
// allowed with the identity headers, which the gateway's rate-limit
// descriptors read (checked against the real rate-limit service), denied
// with the API's 401 body.
func TestGatewayExtAuthzAgainstAuth(t *testing.T) {
	ea := gatewayExtAuthz(t)
	if c := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "auth.default:9000" || ea.GetFailureModeAllow() {
		t.Fatalf("ext_authz to %q, fail open %v; want auth's cluster, fail closed", c, ea.GetFailureModeAllow())
	}
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	// The gateway's workload certificate, as the control plane would serve
	// it over SDS.
	gwCerts := issueWith(t, p.Stack, bhvault.EnvoyIssuerRole, "gateway-ai")
	cc, err := provision.MeshClient{XDSAddress: p.ControlPlane.XDSAddr(), NodeID: "gw-ai-test", Name: "gw-ai-test", Account: "gateway-ai", Certs: gwCerts, XDSTLS: true}.Dial("auth")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	authz := authzv3.NewAuthorizationClient(cc)

	headers := map[string]string{"Authorization": "Bearer " + p.Key, "X-Request-Id": "req-1", "Cookie": "not for auth", "User-Agent": "openai-python"}
	req := checkRequestFor(ea, "POST", "/v1/chat/completions", headers)
	if _, leaked := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["cookie"]; leaked {
		t.Fatal("the CheckRequest carries a header the filter does not allow")
	}
	resp, err := authz.Check(ctx, req, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("valid key: %v", resp)
	}
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	// The identity headers the gateway's rate-limit descriptors read, and
	// the token the services verify.
	for _, h := range []string{identity.KeyIDHeader, identity.AccountIDHeader, identity.TierHeader, identity.RoleHeader, identity.Header} {
		if got[h] == "" {
			t.Errorf("Check set no %s", h)
		}
	}
	if got[identity.AccountIDHeader] != p.Account || got[identity.TierHeader] != "enterprise" {
		t.Errorf("identity headers %v", got)
	}

	// What ext_authz set is what the ai gateway's rate-limit descriptors
	// read: the request, with those headers, makes the platform's per-key
	// descriptor, and the real rate-limit service, programmed over mTLS xDS
	// by the platform's control plane, counts it against the per-key rule
	// of policies/mesh/ratelimit.yaml.
	rlCerts := issueWith(t, p.Stack, bhvault.EnvoyIssuerRole, bhvault.RateLimit)
	rl, err := components.StartRateLimit(ctx, components.RateLimitOptions{
		XDSAddress: p.ControlPlane.XDSAddr(), RedisAddr: p.Stack.Redis.Addr, RedisPassword: p.Stack.Redis.Password, KeyPrefix: "ratelimit:",
		XDSTLS: &components.TLSFiles{Certificate: rlCerts.Certificate, PrivateKey: rlCerts.PrivateKey, CA: rlCerts.CA},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	routes := gatewayRoutes(t)
	forwarded := envoysim.Request{Authority: "api.bulkhead.local", Path: "/v1/chat/completions", Remote: netip.MustParseAddr("192.0.2.7"), Headers: got}
	route := envoysim.Route(routes, forwarded)
	if route == nil {
		t.Fatal("the ai gateway has no route for /v1/chat/completions")
	}
	ds, err := envoysim.Descriptors(route.GetRoute().GetRateLimits(), forwarded)
	if err != nil {
		t.Fatal(err)
	}
	rlc, err := grpc.NewClient(rl.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer rlc.Close()
	var decision *rlsv3.RateLimitResponse
	testenv.Eventually(t, time.Minute, "the rate-limit service's rule for the descriptors", func() error {
		decision, err = rlsv3.NewRateLimitServiceClient(rlc).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "default/ai/10082", Descriptors: ds, HitsAddend: 1})
		if err != nil {
			return err
		}
		return testenv.Until(len(decision.GetStatuses()) > 0 && decision.GetStatuses()[0].GetCurrentLimit() != nil,
			"no rule for %v yet: %v\n%s", ds, decision, rl.LogTail())
	})
	perKey := decision.GetStatuses()[0]
	if len(ds) == 0 || ds[0].GetEntries()[1].GetKey() != "key_id" || ds[0].GetEntries()[1].GetValue() != got[identity.KeyIDHeader] ||
		decision.GetOverallCode() != rlsv3.RateLimitResponse_OK || perKey.GetCurrentLimit().GetRequestsPerUnit() != 1200 || perKey.GetLimitRemaining() != 1199 {
		t.Fatalf("descriptors %v: %v; want the key's first request of 1200 a minute", ds, decision)
	}

	// The identity token Check returned is a JWT that a gateway's
	// jwt_authn, configured from a SecurityPolicy jwt naming auth's keys,
	// accepts: the key set is fetched where the generated filter says
	// (api's /.well-known/jwks.json, the api cluster), and the token's
	// signature, issuer and expiry hold against it.
	checkJWTAgainstPublishedKeys(t, p, got[identity.Header])

	bad := checkRequestFor(ea, "POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-wrong"})
	resp, err = authz.Check(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	var body struct {
		Error struct{ Type, Code, Message string }
	}
	if d == nil || d.GetStatus().GetCode() != 401 || json.Unmarshal([]byte(d.GetBody()), &body) != nil || body.Error.Type != "authentication_error" {
		t.Fatalf("wrong key: %v", resp)
	}
}

// jwtPolicy requires tokens of auth's issuer on the ai gateway's API route.
const jwtPolicy = `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: ai-tokens}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: ai-api}]
  jwt:
    providers:
    - name: auth
      issuer: bulkhead-auth
      jwks: {backendRef: {name: api, port: 8080}, path: /.well-known/jwks.json}
      claimToHeaders: [{claim: tier, header: x-token-tier}]
`

func checkJWTAgainstPublishedKeys(t *testing.T, p *stack.Platform, token string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwt.yaml"), []byte(jwtPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	r := controlplane.Offline(filepath.Join(stack.RepoRoot(), "policies", "mesh"), dir)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	res, err := xds.Build(r.Config(workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &jwtv3.JwtAuthentication{}
	gatewayFilter(t, res, "envoy.filters.http.jwt_authn", cfg)
	provider := cfg.GetProviders()["default/ai-tokens/auth"]
	if provider == nil {
		t.Fatal("the ai gateway has no jwt_authn provider default/ai-tokens/auth")
	}
	route := envoysim.Route(res[resourcev3.RouteType][0].(*routev3.RouteConfiguration), envoysim.Request{Authority: "x", Path: "/v1/chat/completions"})
	per := &jwtv3.PerRouteConfig{}
	if err := route.GetTypedPerFilterConfig()["envoy.filters.http.jwt_authn"].UnmarshalTo(per); err != nil || per.GetRequirementName() != "default/ai-tokens" {
		t.Fatalf("the chat route does not require the policy's token: %v %v", per, err)
	}
	uri := provider.GetRemoteJwks().GetHttpUri()
	if uri.GetCluster() != "api.default:8080" || uri.GetUri() != "http://api.default:8080/.well-known/jwks.json" {
		t.Fatalf("key set fetched from %s on %s", uri.GetUri(), uri.GetCluster())
	}
	// The api cluster's endpoint is the platform's API address.
	fetch := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.APIURL+"/.well-known/jwks.json", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			return "", fmt.Errorf("GET %s: %s %s", uri.GetUri(), resp.Status, b)
		}
		return string(b), err
	}
	v, err := identity.NewVerifier(t.Context(), fetch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), token, time.Now()); err != nil {
		t.Fatalf("the identity token does not verify against the published key set: %v", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var claims struct{ Iss, Tier string }
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Iss != provider.GetIssuer() || claims.Tier == "" {
		t.Fatalf("token claims %s: want iss %q and the tier claim the policy copies", payload, provider.GetIssuer())
	}
	// A token signed by another key does not verify.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := identity.NewSigner(base64.StdEncoding.EncodeToString(other.Seed()), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := signer.Sign(&authv1.Identity{KeyId: "k", AccountId: "a", Tier: "enterprise"}, time.Now())
	if _, err := v.Verify(t.Context(), forged, time.Now()); err == nil {
		t.Fatal("a token signed by a key auth does not publish verified")
	}
}
