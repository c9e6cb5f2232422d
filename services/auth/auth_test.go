package auth_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	authzv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/auth"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/users"
)

// checkRequest is what the gateway's ext_authz filter sends.
func checkRequest(authz string) *authzv3.CheckRequest {
	h := map[string]string{":path": "/v1/chat/completions", ":method": "POST"}
	if authz != "" {
		h["authorization"] = authz
	}
	return &authzv3.CheckRequest{Attributes: &authzv3.AttributeContext{Request: &authzv3.AttributeContext_Request{
		Http: &authzv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v1/chat/completions", Headers: h},
	}}}
}

type verdict struct {
	code    codes.Code
	status  int
	body    string
	headers map[string]string
	removed []string
}

func check(t *testing.T, c authzv3.AuthorizationClient, authz string) verdict {
	t.Helper()
	r, err := c.Check(t.Context(), checkRequest(authz), grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	v := verdict{code: codes.Code(r.GetStatus().GetCode()), headers: map[string]string{}}
	if ok := r.GetOkResponse(); ok != nil {
		for _, h := range ok.GetHeaders() {
			v.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		v.removed = ok.GetHeadersToRemove()
	}
	if d := r.GetDeniedResponse(); d != nil {
		v.status, v.body = int(d.GetStatus().GetCode()), d.GetBody()
	}
	return v
}

func TestKeysCheckAndCacheOnlyFallback(t *testing.T) {
	s := stack.New(t)
	s.StartService("users", users.Setup(), stack.Options{})
	primary := s.StartService("auth", auth.Setup(&auth.Options{}), stack.Options{Instance: "auth-1"})
	s.StartService("auth", auth.Setup(&auth.Options{CacheOnly: true}), stack.Options{Service: "auth-cache", Instance: "auth-cache-1"})
	ctx := t.Context()
	uc := usersv1.NewUsersServiceClient(s.Dial("users"))
	ac := authv1.NewAuthServiceClient(s.Dial("auth"))
	cc := authzv3.NewAuthorizationClient(s.Dial("auth"))

	acct, err := uc.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "acme", Tier: "standard"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	created, err := ac.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: acct.Account.Id, Name: "ci"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	secret := created.Secret
	if !strings.HasPrefix(secret, "sk-") || !strings.HasPrefix(secret, created.Key.Prefix) || created.Key.Role != authv1.Role_ROLE_USER {
		t.Fatalf("created %v with secret %q", created.Key, secret)
	}
	// Only a hash is stored.
	var stored string
	db, err := pgx.Connect(ctx, s.Postgres.DatabaseDSN("auth"))
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRow(ctx, `SELECT hash FROM api_keys WHERE id = $1`, created.Key.Id).Scan(&stored)
	db.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, secret[3:]) || len(stored) != 64 {
		t.Fatalf("stored %q", stored)
	}

	verifier := identity.FromAuth(ac)
	t.Run("allowed", func(t *testing.T) {
		v := check(t, cc, "Bearer "+secret)
		if v.code != codes.OK || v.headers[identity.AccountIDHeader] != acct.Account.Id || v.headers[identity.TierHeader] != "standard" ||
			v.headers[identity.KeyIDHeader] != created.Key.Id || v.headers[identity.RoleHeader] != "user" {
			t.Fatalf("verdict %+v", v)
		}
		if len(v.removed) != 1 || v.removed[0] != "authorization" {
			t.Errorf("the key is not removed from the request: %v", v.removed)
		}
		id, err := verifier.Verify(ctx, v.headers[identity.Header], time.Now())
		if err != nil || id.AccountId != acct.Account.Id {
			t.Fatalf("identity token: %v %v", id, err)
		}
	})
	t.Run("denied", func(t *testing.T) {
		for _, authz := range []string{"", "Bearer sk-not-a-real-key-at-all-xxxx", "Basic abc", "Bearer " + secret + "x"} {
			v := check(t, cc, authz)
			var body struct {
				Error struct{ Message, Type, Code string }
			}
			if v.code != codes.Unauthenticated || v.status != 401 || json.Unmarshal([]byte(v.body), &body) != nil || body.Error.Type != "authentication_error" {
				t.Errorf("%q: %+v", authz, v)
			}
			if strings.Contains(v.body, secret) {
				t.Errorf("the denial echoes the key: %s", v.body)
			}
		}
	})
	t.Run("tokens", func(t *testing.T) {
		tok, err := ac.IssueToken(ctx, &authv1.IssueTokenRequest{Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ac.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: tok.Token})
		if err != nil || got.Identity.KeyId != created.Key.Id {
			t.Fatalf("verify: %v %v", got, err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		other, err := ac.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: acct.Account.Id, Name: "to revoke"})
		if err != nil {
			t.Fatal(err)
		}
		if v := check(t, cc, "Bearer "+other.Secret); v.code != codes.OK {
			t.Fatalf("fresh key: %+v", v)
		}
		if _, err := ac.RevokeKey(ctx, &authv1.RevokeKeyRequest{KeyId: other.Key.Id}); err != nil {
			t.Fatal(err)
		}
		// Revoking drops the key from auth's cache in the same call; the
		// wait only bounds a hang (timings are for benchmarks).
		start := time.Now()
		testenv.Eventually(t, 10*time.Second, "the revoked key refused", func() error {
			v := check(t, cc, "Bearer "+other.Secret)
			return testenv.Until(v.code != codes.OK, "still accepted: %+v", v)
		})
		t.Logf("refused %s after the revocation", time.Since(start))
		list, err := ac.ListKeys(ctx, &authv1.ListKeysRequest{AccountId: acct.Account.Id})
		if err != nil || len(list.Keys) != 1 || list.Keys[0].Id != created.Key.Id {
			t.Fatalf("active keys %v (%v)", list.GetKeys(), err)
		}
	})
	t.Run("database down: cached keys keep working, then the cache-only pool", func(t *testing.T) {
		if err := s.Postgres.Close(); err != nil {
			t.Fatal(err)
		}
		if v := check(t, cc, "Bearer "+secret); v.code != codes.OK {
			t.Fatalf("primary with DB down, cached key: %+v", v)
		}
		primary.Kill()
		s.RemoveEndpoint("auth-1")
		// The mesh fails over to auth-cache (BackendPolicy auth: fallback).
		testenv.Eventually(t, 20*time.Second, "an answer from the cache-only pool", func() error {
			r, err := cc.Check(ctx, checkRequest("Bearer "+secret))
			if err != nil {
				return err
			}
			return testenv.Until(codes.Code(r.GetStatus().GetCode()) == codes.OK, "Check answered %v", r.GetStatus())
		})
		// Key management needs the database: the cache-only pool says so.
		_, err := ac.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: acct.Account.Id})
		if err == nil || !strings.Contains(err.Error(), "cache-only") {
			t.Fatalf("CreateKey on the cache-only pool: %v", err)
		}
		// An unknown key is refused with 503, not 401: this pool cannot tell.
		if v := check(t, cc, "Bearer sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); v.status != 503 {
			t.Fatalf("unknown key on the cache-only pool: %+v", v)
		}
	})
}
