// Package identity is the short-lived signed identity token that auth
// issues (at the gateway's ext_authz Check, or when api calls Check itself)
// and that api and chat verify: an EdDSA (Ed25519) JWT whose claims are the
// caller's key id, account, tier and role. It travels east-west in the
// x-bulkhead-identity metadata; the signing key lives in Vault and only
// auth holds it; verifiers get the public keys from auth (JWKS).
package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

// Header is the identity token's metadata key (HTTP header and gRPC).
const Header = "x-bulkhead-identity"

// The identity headers auth's Check returns next to the token, for the
// gateway's rate-limit descriptors and access logs.
const (
	KeyIDHeader     = "x-bulkhead-key-id"
	AccountIDHeader = "x-bulkhead-account-id"
	TierHeader      = "x-bulkhead-tier"
	RoleHeader      = "x-bulkhead-role"
)

// Issuer is the tokens' iss claim.
const Issuer = "bulkhead-auth"

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type claims struct {
	Iss     string `json:"iss"`
	Sub     string `json:"sub"` // key id
	Account string `json:"acct"`
	Tier    string `json:"tier"`
	Role    string `json:"role"`
	Iat     int64  `json:"iat"`
	Exp     int64  `json:"exp"`
}

// Signer signs identity tokens.
type Signer struct {
	key ed25519.PrivateKey
	kid string
	ttl time.Duration
}

// NewSigner takes the base64 Ed25519 seed from Vault.
func NewSigner(seedB64 string, ttl time.Duration) (*Signer, error) {
	seed, err := base64.StdEncoding.DecodeString(seedB64)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("identity: signing_key must be a base64 Ed25519 seed (32 bytes)")
	}
	key := ed25519.NewKeyFromSeed(seed)
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return &Signer{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:8]), ttl: ttl}, nil
}

// Sign returns a token for id, valid from now for the signer's TTL.
func (s *Signer) Sign(id *authv1.Identity, now time.Time) (string, time.Time) {
	exp := now.Add(s.ttl)
	h, _ := json.Marshal(header{Alg: "EdDSA", Typ: "JWT", Kid: s.kid})
	c, _ := json.Marshal(claims{
		Iss: Issuer, Sub: id.GetKeyId(), Account: id.GetAccountId(), Tier: id.GetTier(),
		Role: roleName(id.GetRole()), Iat: now.Unix(), Exp: exp.Unix(),
	})
	signing := b64(h) + "." + b64(c)
	sig := ed25519.Sign(s.key, []byte(signing))
	return signing + "." + b64(sig), exp
}

// JWKS publishes the public key (RFC 8037 OKP), e.g. for Envoy's
// jwt_authn and for Verifier.
func (s *Signer) JWKS() string {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	b, _ := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{[]jwk{{Kty: "OKP", Crv: "Ed25519", X: b64(s.key.Public().(ed25519.PublicKey)), Kid: s.kid, Alg: "EdDSA", Use: "sig"}}})
	return string(b)
}

// Verifier checks tokens against published keys. It remembers the tokens
// it verified until they expire (a token is reused by auth for a while, so
// most calls skip the signature check).
type Verifier struct {
	mu    sync.RWMutex
	keys  map[string]ed25519.PublicKey
	fetch func(context.Context) (string, error)
	last  time.Time

	seenMu sync.Mutex
	seen   map[string]verified
}

type verified struct {
	id  *authv1.Identity
	exp time.Time
}

// maxSeen bounds the verified-token memory; it is cleared when full.
const maxSeen = 50000

// NewVerifier verifies with the keys fetch returns (auth's
// GetSigningKeys), fetching them again when a token names a key it does
// not know (rotation), at most once a second.
func NewVerifier(ctx context.Context, fetch func(context.Context) (string, error)) (*Verifier, error) {
	v := &Verifier{fetch: fetch, keys: map[string]ed25519.PublicKey{}}
	if err := v.refresh(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// FromAuth verifies with the keys of auth's GetSigningKeys, fetched on
// the first verification (so that a service may start before auth).
func FromAuth(c authv1.AuthServiceClient) *Verifier {
	return &Verifier{keys: map[string]ed25519.PublicKey{}, fetch: func(ctx context.Context) (string, error) {
		r, err := c.GetSigningKeys(ctx, &authv1.GetSigningKeysRequest{})
		return r.GetJwksJson(), err
	}}
}

func (v *Verifier) refresh(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if time.Since(v.last) < time.Second {
		return nil
	}
	v.last = time.Now()
	doc, err := v.fetch(ctx)
	if err != nil {
		return fmt.Errorf("identity: signing keys: %w", err)
	}
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid string
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return fmt.Errorf("identity: signing keys: %w", err)
	}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if k.Kty != "OKP" || k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		v.keys[k.Kid] = ed25519.PublicKey(x)
	}
	if len(v.keys) == 0 {
		return errors.New("identity: no Ed25519 key in the published set")
	}
	return nil
}

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("invalid identity token")

// Verify returns the identity a token carries.
func (v *Verifier) Verify(ctx context.Context, token string, now time.Time) (*authv1.Identity, error) {
	v.seenMu.Lock()
	if s, ok := v.seen[token]; ok {
		v.seenMu.Unlock()
		if now.Before(s.exp) {
			return s.id, nil
		}
		return nil, fmt.Errorf("%w: expired", ErrInvalid)
	}
	v.seenMu.Unlock()
	id, exp, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	v.seenMu.Lock()
	if v.seen == nil || len(v.seen) >= maxSeen {
		v.seen = map[string]verified{}
	}
	v.seen[token] = verified{id: id, exp: exp}
	v.seenMu.Unlock()
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*authv1.Identity, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, time.Time{}, fmt.Errorf("%w: not a JWT", ErrInvalid)
	}
	var h header
	if err := unb64JSON(parts[0], &h); err != nil || h.Alg != "EdDSA" {
		return nil, time.Time{}, fmt.Errorf("%w: header", ErrInvalid)
	}
	v.mu.RLock()
	key, ok := v.keys[h.Kid]
	v.mu.RUnlock()
	if !ok {
		if err := v.refresh(ctx); err != nil {
			return nil, time.Time{}, err
		}
		v.mu.RLock()
		key, ok = v.keys[h.Kid]
		v.mu.RUnlock()
		if !ok {
			return nil, time.Time{}, fmt.Errorf("%w: unknown key %q", ErrInvalid, h.Kid)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, time.Time{}, fmt.Errorf("%w: signature", ErrInvalid)
	}
	var c claims
	if err := unb64JSON(parts[1], &c); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: claims", ErrInvalid)
	}
	if c.Iss != Issuer {
		return nil, time.Time{}, fmt.Errorf("%w: issuer %q", ErrInvalid, c.Iss)
	}
	if now.Unix() >= c.Exp {
		return nil, time.Time{}, fmt.Errorf("%w: expired", ErrInvalid)
	}
	return &authv1.Identity{KeyId: c.Sub, AccountId: c.Account, Tier: c.Tier, Role: roleValue(c.Role)}, time.Unix(c.Exp, 0), nil
}

// FromContext verifies the identity token of an incoming gRPC call; the
// error is a gRPC Unauthenticated status.
func (v *Verifier) FromContext(ctx context.Context) (*authv1.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	toks := md.Get(Header)
	if len(toks) != 1 {
		return nil, status.Error(codes.Unauthenticated, "missing identity token")
	}
	id, err := v.Verify(ctx, toks[0], time.Now())
	if errors.Is(err, ErrInvalid) {
		return nil, status.Error(codes.Unauthenticated, "invalid identity token")
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, "identity keys unavailable")
	}
	return id, nil
}

// Outgoing returns ctx carrying token to the next hop.
func Outgoing(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, Header, token)
}

func roleName(r authv1.Role) string {
	if r == authv1.Role_ROLE_ADMIN {
		return "admin"
	}
	return "user"
}

func roleValue(s string) authv1.Role {
	if s == "admin" {
		return authv1.Role_ROLE_ADMIN
	}
	return authv1.Role_ROLE_USER
}

// RoleName is the role as identity headers and tokens spell it.
func RoleName(r authv1.Role) string { return roleName(r) }

// RoleValue reads a role as identity headers spell it.
func RoleValue(s string) authv1.Role { return roleValue(s) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64JSON(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
