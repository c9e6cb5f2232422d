package provision_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// Provisioning again, as a cluster's bootstrap Job does at every deploy,
// keeps what running services hold: auth's keys (a new pepper would void
// every API key) and the Redis passwords in their secrets, with no keys
// file, only Vault's own state.
func TestProvisionAgainKeepsKeysAndPasswords(t *testing.T) {
	pg, rd, v := testenv.NewPostgres(t), testenv.NewRedis(t), testenv.NewVault(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	opts := provision.Options{
		PostgresAdminDSN: pg.DSN(), PostgresHost: pg.Host, PostgresPort: pg.Port,
		RedisAddr: rd.Addr, RedisPassword: rd.Password, VaultAddr: v.Addr, VaultToken: v.RootToken,
		Dir: t.TempDir(), Namespace: "bulkhead",
	}
	first, err := provision.Provision(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.Client(v.Addr, v.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	read := func(svc string) map[string]any {
		s, err := c.KVv2("secret").Get(ctx, "bulkhead/"+svc)
		if err != nil {
			t.Fatal(err)
		}
		return s.Data
	}
	auth1, users1 := read("auth"), read("users")
	opts.RateLimitRedisPassword = first.RateLimitRedis.Password
	second, err := provision.Provision(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	auth2, users2 := read("auth"), read("users")
	for _, k := range []string{"pepper", "signing_key", "redis_url"} {
		if auth1[k] != auth2[k] {
			t.Errorf("auth's %s changed on the second run", k)
		}
	}
	if users1["redis_url"] != users2["redis_url"] || second.RateLimitRedis.Password != first.RateLimitRedis.Password {
		t.Error("a Redis password changed on the second run")
	}
	// And the kept password still opens Redis as that user.
	opt, err := redis.ParseURL(users2["redis_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	u := redis.NewClient(opt)
	defer u.Close()
	if err := u.Set(ctx, "users:provision-test", "1", time.Minute).Err(); err != nil {
		t.Fatalf("users' Redis user after the second run: %v", err)
	}
	// The workloads' PKI roles name the namespace given.
	if _, err := pki.IssueCert(ctx, c, "users", "spiffe://bulkhead.local/ns/bulkhead/sa/users", time.Hour); err != nil {
		t.Fatalf("users' certificate in namespace bulkhead: %v", err)
	}
	if _, err := pki.IssueCert(ctx, c, "users", "spiffe://bulkhead.local/ns/default/sa/users", time.Hour); err == nil {
		t.Fatal("users' PKI role issued a certificate for another namespace")
	}
}
