// Package auth owns API keys (hashed with a Vault-held pepper, cached in
// Redis), issues the short-lived identity tokens the rest of the platform
// trusts, and implements Envoy's ext_authz Authorization/Check. Started
// with --cache-only it answers from Redis alone: the identity fallback pool
// that keeps keys working while DB Auth is down.
package auth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// TokenTTL is the identity token's lifetime.
const TokenTTL = 5 * time.Minute

// Options are auth's own settings.
type Options struct {
	// CacheOnly answers from Redis alone (no database).
	CacheOnly bool
}

// Flags registers the options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.CacheOnly, "cache-only", false, "answer key checks from the Redis cache alone, without the database (the identity fallback pool)")
}

type server struct {
	authv1.UnimplementedAuthServiceServer
	store  *store // nil in cache-only mode
	cache  *cache
	hash   hasher
	signer *identity.Signer
	// verifier checks tokens against this replica's own key.
	verifier *identity.Verifier
	tokens   tokenReuse
	users    usersv1.UsersServiceClient // nil in cache-only mode
	log      interface {
		WarnContext(context.Context, string, ...any)
	}
}

var _ authv1.AuthServiceServer = (*server)(nil)

// Setup wires the service.
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		pepper, err := rt.Secrets.Get("pepper")
		if err != nil {
			return err
		}
		seed, err := rt.Secrets.Get("signing_key")
		if err != nil {
			return err
		}
		signer, err := identity.NewSigner(seed, TokenTTL)
		if err != nil {
			return err
		}
		rdb, err := rt.Redis(ctx)
		if err != nil {
			return err
		}
		verifier, err := identity.NewVerifier(ctx, func(context.Context) (string, error) { return signer.JWKS(), nil })
		if err != nil {
			return err
		}
		s := &server{cache: &cache{rdb: rdb}, hash: hasher{[]byte(pepper)}, signer: signer, verifier: verifier, log: rt.Log}
		if !opts.CacheOnly {
			db, err := rt.Postgres(ctx, migrations)
			if err != nil {
				return err
			}
			s.store = &store{db: db}
			cc, err := rt.Dial("users")
			if err != nil {
				return err
			}
			s.users = usersv1.NewUsersServiceClient(cc)
		}
		authv1.RegisterAuthServiceServer(rt.GRPC, s)
		registerCheck(rt, s)
		return nil
	}
}

func (s *server) needStore() error {
	if s.store == nil {
		return status.Error(codes.Unavailable, "auth runs in cache-only mode: key management is unavailable")
	}
	return nil
}

// errUnknownKey is a key that is not valid (unknown, revoked, expired).
var errUnknownKey = errors.New("invalid key")

// identify returns the identity of a secret: from the cache, else from the
// database (then cached). In cache-only mode a cache miss is UNAVAILABLE:
// the key may be valid, this pool cannot tell.
func (s *server) identify(ctx context.Context, secret string) (*authv1.Identity, error) {
	if !strings.HasPrefix(secret, secretPrefix) || len(secret) > 128 {
		return nil, errUnknownKey
	}
	h := s.hash.hash(secret)
	id, exp, ok, err := s.cache.get(ctx, h)
	if err != nil {
		s.log.WarnContext(ctx, "key cache read", "error", err)
	}
	if ok {
		if !exp.IsZero() && !time.Now().Before(exp) {
			return nil, errUnknownKey
		}
		return id, nil
	}
	if s.store == nil {
		return nil, status.Error(codes.Unavailable, "key not in cache and the database is not reachable from the cache-only pool")
	}
	row, err := s.store.byHash(ctx, h)
	if errors.Is(err, errNoKey) {
		return nil, errUnknownKey
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "key store: %v", err)
	}
	k := row.key
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !time.Now().Before(k.ExpiresAt.AsTime())) {
		return nil, errUnknownKey
	}
	acct, err := s.users.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: k.AccountId})
	if status.Code(err) == codes.NotFound {
		return nil, errUnknownKey
	}
	if err != nil {
		return nil, err
	}
	if acct.GetAccount().GetDisabled() {
		return nil, status.Error(codes.PermissionDenied, "the account of this key is disabled")
	}
	id = &authv1.Identity{KeyId: k.Id, AccountId: k.AccountId, Tier: acct.GetAccount().GetTier(), Role: k.Role}
	var expires time.Time
	if k.ExpiresAt != nil {
		expires = k.ExpiresAt.AsTime()
	}
	if err := s.cache.put(ctx, h, id, expires); err != nil {
		s.log.WarnContext(ctx, "key cache write", "error", err)
	}
	if err := s.store.touch(ctx, k.Id); err != nil {
		s.log.WarnContext(ctx, "last_used_at", "error", err)
	}
	return id, nil
}

func (s *server) CreateKey(ctx context.Context, req *authv1.CreateKeyRequest) (*authv1.CreateKeyResponse, error) {
	if err := s.needStore(); err != nil {
		return nil, err
	}
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	if len(req.GetName()) > 128 {
		return nil, platform.InvalidField("name", "must be at most 128 characters")
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.AsTime().After(time.Now()) {
		return nil, platform.InvalidField("expires_at", "must be in the future")
	}
	if _, err := s.users.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: req.GetAccountId()}); err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, platform.InvalidField("account_id", "account %q does not exist", req.GetAccountId())
		}
		return nil, err
	}
	role := req.GetRole()
	if role == authv1.Role_ROLE_UNSPECIFIED {
		role = authv1.Role_ROLE_USER
	}
	secret := newSecret()
	k, err := s.store.insert(ctx, &authv1.ApiKey{Id: newID(), AccountId: req.GetAccountId(), Name: req.GetName(),
		Prefix: displayPrefix(secret), Role: role, ExpiresAt: req.GetExpiresAt()}, s.hash.hash(secret))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "store key: %v", err)
	}
	return &authv1.CreateKeyResponse{Key: k, Secret: secret}, nil
}

func (s *server) ListKeys(ctx context.Context, req *authv1.ListKeysRequest) (*authv1.ListKeysResponse, error) {
	if err := s.needStore(); err != nil {
		return nil, err
	}
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 100 {
		size = 100
	}
	keys, err := s.store.list(ctx, req.GetAccountId(), req.GetIncludeRevoked(), size+1, req.GetPageToken())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list keys: %v", err)
	}
	out := &authv1.ListKeysResponse{Keys: keys}
	if len(keys) > size {
		out.Keys = keys[:size]
		out.NextPageToken = keys[size-1].Id
	}
	return out, nil
}

// RevokeKey revokes a key and drops it from the cache at once, so that
// every auth replica (and the cache-only pool) refuses it on the next call.
func (s *server) RevokeKey(ctx context.Context, req *authv1.RevokeKeyRequest) (*authv1.RevokeKeyResponse, error) {
	if err := s.needStore(); err != nil {
		return nil, err
	}
	row, err := s.store.revoke(ctx, req.GetKeyId())
	if errors.Is(err, errNoKey) {
		return nil, status.Errorf(codes.NotFound, "key %q does not exist", req.GetKeyId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "revoke: %v", err)
	}
	if err := s.cache.drop(ctx, row.hash); err != nil {
		// The key is revoked in the database; the cache entry must go too,
		// or the cache-only pool would keep honouring it until its TTL.
		return nil, status.Errorf(codes.Unavailable, "revoked, but dropping the cached key failed (retry): %v", err)
	}
	return &authv1.RevokeKeyResponse{Key: row.key}, nil
}

func (s *server) IssueToken(ctx context.Context, req *authv1.IssueTokenRequest) (*authv1.IssueTokenResponse, error) {
	id, err := s.identify(ctx, req.GetSecret())
	if errors.Is(err, errUnknownKey) {
		return nil, status.Errorf(codes.Unauthenticated, "Authentication Fails, Your api key: %s is invalid", masked(req.GetSecret()))
	}
	if err != nil {
		return nil, err
	}
	tok, exp := s.signer.Sign(id, time.Now())
	return &authv1.IssueTokenResponse{Token: tok, ExpiresAt: timestamppb.New(exp), Identity: id}, nil
}

func (s *server) VerifyToken(ctx context.Context, req *authv1.VerifyTokenRequest) (*authv1.VerifyTokenResponse, error) {
	id, err := s.verifier.Verify(ctx, req.GetToken(), time.Now())
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, fmt.Sprint(err))
	}
	return &authv1.VerifyTokenResponse{Identity: id}, nil
}

func (s *server) GetSigningKeys(context.Context, *authv1.GetSigningKeysRequest) (*authv1.GetSigningKeysResponse, error) {
	return &authv1.GetSigningKeysResponse{JwksJson: s.signer.JWKS()}, nil
}
