package auth

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

// CacheTTL is how long a verified key's identity stays in Redis. Revoking
// a key deletes its entry at once; the TTL bounds how stale a tier change
// can be, and how long the cache-only pool can vouch for a key.
const CacheTTL = 10 * time.Minute

// cache holds verified keys by hash: auth:key:HASH → identity.
type cache struct{ rdb *redis.Client }

type cachedKey struct {
	KeyID     string `json:"k"`
	AccountID string `json:"a"`
	Tier      string `json:"t"`
	Role      int32  `json:"r"`
	Expires   int64  `json:"e,omitempty"` // unix seconds; 0: never
}

func cacheKey(hash string) string { return "auth:key:" + hash }

func (c *cache) get(ctx context.Context, hash string) (*authv1.Identity, time.Time, bool, error) {
	b, err := c.rdb.Get(ctx, cacheKey(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, err
	}
	var ck cachedKey
	if err := json.Unmarshal(b, &ck); err != nil {
		return nil, time.Time{}, false, nil // unreadable entry: treat as a miss
	}
	var exp time.Time
	if ck.Expires > 0 {
		exp = time.Unix(ck.Expires, 0)
	}
	return &authv1.Identity{KeyId: ck.KeyID, AccountId: ck.AccountID, Tier: ck.Tier, Role: authv1.Role(ck.Role)}, exp, true, nil
}

func (c *cache) put(ctx context.Context, hash string, id *authv1.Identity, expires time.Time) error {
	ck := cachedKey{KeyID: id.KeyId, AccountID: id.AccountId, Tier: id.Tier, Role: int32(id.Role)}
	ttl := CacheTTL
	if !expires.IsZero() {
		ck.Expires = expires.Unix()
		if d := time.Until(expires); d < ttl {
			ttl = d
		}
	}
	if ttl <= 0 {
		return nil
	}
	b, _ := json.Marshal(ck)
	return c.rdb.Set(ctx, cacheKey(hash), b, ttl).Err()
}

func (c *cache) drop(ctx context.Context, hash string) error {
	return c.rdb.Del(ctx, cacheKey(hash)).Err()
}
