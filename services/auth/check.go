package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authzv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

// checkServer is Envoy's ext_authz API (envoy.service.auth.v3), used by
// the gateways, and by the api service itself when no gateway is in front.
type checkServer struct {
	authzv3.UnimplementedAuthorizationServer
	s *server
}

func registerCheck(rt *platform.Runtime, s *server) {
	authzv3.RegisterAuthorizationServer(rt.GRPC, &checkServer{s: s})
}

// Check authenticates the request's bearer key. Allowed: the identity
// headers (key id, account, tier, role) and the signed identity token are
// set on the request, client-sent copies overwritten, and the key itself
// removed so that nothing behind the gateway sees it. Denied: the OpenAI
// error JSON with 401 (or 403 for a disabled account, 503 when this pool
// cannot tell).
func (c *checkServer) Check(ctx context.Context, req *authzv3.CheckRequest) (*authzv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
	secret, ok := bearer(h["authorization"])
	if !ok {
		return denied(codes.Unauthenticated, apierr.Unauthorized("Authentication Fails (no API key in the Authorization header: send 'Authorization: Bearer sk-...')")), nil
	}
	id, err := c.s.identify(ctx, secret)
	switch {
	case errors.Is(err, errUnknownKey):
		return denied(codes.Unauthenticated, apierr.Unauthorized(fmt.Sprintf("Authentication Fails, Your api key: %s is invalid", masked(secret)))), nil
	case status.Code(err) == codes.PermissionDenied:
		return denied(codes.PermissionDenied, apierr.Forbidden(status.Convert(err).Message())), nil
	case err != nil:
		return denied(codes.Unavailable, apierr.Overloaded("Authentication is temporarily unavailable, please retry", time.Second)), nil
	}
	tok := c.s.tokens.get(id, c.s.signer)
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return &authzv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authzv3.CheckResponse_OkResponse{OkResponse: &authzv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				set(identity.Header, tok),
				set(identity.KeyIDHeader, id.KeyId),
				set(identity.AccountIDHeader, id.AccountId),
				set(identity.TierHeader, id.Tier),
				set(identity.RoleHeader, identity.RoleName(id.Role)),
			},
			HeadersToRemove: []string{"authorization"},
		}},
	}, nil
}

func denied(code codes.Code, e *apierr.Error) *authzv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}}}
	if ra := e.RetryAfterSeconds(); ra != "" {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "retry-after", Value: ra}})
	}
	return &authzv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: e.Message},
		HttpResponse: &authzv3.CheckResponse_DeniedResponse{DeniedResponse: &authzv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.Status)},
			Headers: headers,
			Body:    string(e.Body()),
		}},
	}
}

// tokenReuse hands out the same identity token for a key while it is
// young (the first fifth of its life): verifiers then check its signature
// once, not on every request. A token is only handed out after the key was
// checked, so a revoked key gets none.
type tokenReuse struct {
	mu     sync.Mutex
	tokens map[string]issued
}

type issued struct {
	id    *authv1.Identity
	token string
	at    time.Time
}

func (r *tokenReuse) get(id *authv1.Identity, signer *identity.Signer) string {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tokens[id.KeyId]; ok && now.Sub(t.at) < TokenTTL/5 && proto.Equal(t.id, id) {
		return t.token
	}
	tok, _ := signer.Sign(id, now)
	if r.tokens == nil || len(r.tokens) >= 100000 {
		r.tokens = map[string]issued{}
	}
	r.tokens[id.KeyId] = issued{id: id, token: tok, at: now}
	return tok
}
