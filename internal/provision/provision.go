// Package provision prepares the shared stores and Vault for the platform's
// services, the same way for `bulkhead up` and for the tests: per service a
// PostgreSQL role and database, a Redis ACL user limited to its key prefix,
// a Vault policy and AppRole, and its KV secret holding those credentials
// and its keys. Services then learn everything secret from Vault alone.
package provision

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// Need is what one service needs provisioned.
type Need struct {
	Name     string
	Database bool
	Redis    bool
	// Keys are generated once and kept (see Options.KeysFile): losing
	// auth's pepper would invalidate every stored API key.
	Keys []string
}

// Services are the platform's services and what each needs.
var Services = []Need{
	{Name: "auth", Database: true, Redis: true, Keys: []string{"pepper", "signing_key"}},
	{Name: "users", Database: true, Redis: true},
	{Name: "models", Database: true},
	{Name: "chat", Database: true, Redis: true},
	{Name: "inference"},
	{Name: "training", Database: true},
	// secret_key seals the endpoints' signing secrets in DB Webhooks.
	{Name: "webhooks", Database: true, Keys: []string{"secret_key"}},
	{Name: "api"},
}

// Options says where the shared stores and Vault are, with administrative
// credentials that stay with the caller.
type Options struct {
	// PostgresAdminDSN is a superuser connection (any database).
	PostgresAdminDSN string
	// PostgresHost and PostgresPort are how services reach PostgreSQL.
	PostgresHost string
	PostgresPort int
	// RedisAddr and RedisPassword (the default user's).
	RedisAddr, RedisPassword string
	// VaultAddr and VaultToken (a token allowed to configure Vault).
	VaultAddr, VaultToken string
	// Dir receives the AppRole secret-id files (mode 0600).
	Dir string
	// KeysFile keeps the generated service keys across runs (mode 0600),
	// for a Vault that forgets them (dev mode). Empty: keys are not kept.
	KeysFile string
	// Extra secret values per service, merged into its KV secret (e.g. an
	// upstream API key for the openai engine).
	Extra map[string]map[string]string
	// DatabaseCredentialTTL is the lifetime of the services' database users
	// (default vault.DatabaseCredentialTTL).
	DatabaseCredentialTTL time.Duration
	// Kubernetes, when set, lets the services log in with their
	// Kubernetes service account instead of an AppRole (a cluster).
	Kubernetes *KubernetesAuth
	// Namespace of the workloads, the namespace part of their SPIFFE IDs
	// (default "default").
	Namespace string
	// RateLimitRedisPassword keeps the rate-limit service's Redis password
	// of an earlier run (it cannot read Vault; its caller keeps it). Empty:
	// a new one.
	RateLimitRedisPassword string
	// Kafka, when set, gets the topics of services/events and a user per
	// service that uses it.
	Kafka *KafkaAdmin
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return "default"
	}
	return o.Namespace
}

// Credentials is what a service is started with.
type Credentials struct {
	RoleID       string
	SecretIDFile string
}

// Result is what provisioning gives its caller.
type Result struct {
	// Credentials of each service, by name.
	Credentials map[string]Credentials
	// Operator is the operator's workload certificate (Dir/operator), for
	// the tools that call the services over the mesh.
	Operator pki.CertFiles
	// RootCA is the mesh's trust bundle (PEM).
	RootCA string
	// RateLimitRedis is the rate-limit service's Redis user, limited to
	// the keys "ratelimit:*" (envoyproxy/ratelimit cannot read Vault; the
	// runner hands it these in its environment).
	RateLimitRedis RedisUser
}

// RedisUser is a Redis ACL user.
type RedisUser struct{ User, Password string }

// Provision sets up every service of Services, and the PKI.
func Provision(ctx context.Context, o Options) (*Result, error) {
	if o.Dir == "" {
		return nil, errors.New("provision: Dir is required")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	keys, err := loadKeys(o.KeysFile)
	if err != nil {
		return nil, err
	}
	pg, err := connectPostgres(ctx, o.PostgresAdminDSN)
	if err != nil {
		return nil, err
	}
	defer pg.Close(context.WithoutCancel(ctx))
	rd := connectRedis(o.RedisAddr, o.RedisPassword)
	defer rd.Close()
	v, err := pki.Client(o.VaultAddr, o.VaultToken)
	if err != nil {
		return nil, err
	}
	if err := enableAppRole(ctx, v); err != nil {
		return nil, err
	}
	if err := enableKV(ctx, v); err != nil {
		return nil, err
	}
	rootCA, err := setupPKI(ctx, v)
	if err != nil {
		return nil, err
	}
	if err := setupDatabaseEngine(ctx, v, o.PostgresAdminDSN); err != nil {
		return nil, err
	}
	if o.DatabaseCredentialTTL == 0 {
		o.DatabaseCredentialTTL = bhvault.DatabaseCredentialTTL
	}
	var kafka *kafkaSetup
	if o.Kafka != nil {
		if kafka, err = openKafka(ctx, *o.Kafka); err != nil {
			return nil, err
		}
		defer kafka.close()
	}
	out := map[string]Credentials{}
	for _, n := range Services {
		secret := map[string]any{"service": n.Name}
		// What Vault holds already (a Vault that keeps its storage): its
		// keys and Redis password are kept, so running services keep
		// working when provisioning runs again.
		current, err := existingSecret(ctx, v, n.Name)
		if err != nil {
			return nil, err
		}
		if n.Database {
			url, err := databaseFor(ctx, pg, n.Name, o.PostgresHost, o.PostgresPort)
			if err != nil {
				return nil, fmt.Errorf("provision %s: %w", n.Name, err)
			}
			secret["database_url"] = url
			if err := databaseRole(ctx, v, n.Name, o.DatabaseCredentialTTL); err != nil {
				return nil, err
			}
		}
		if n.Redis {
			url, err := redisUserFor(ctx, rd, n.Name, o.RedisAddr, redisPasswordIn(current))
			if err != nil {
				return nil, fmt.Errorf("provision %s: %w", n.Name, err)
			}
			secret["redis_url"] = url
		}
		// A key is kept across runs: from the keys file, else from Vault.
		for _, k := range n.Keys {
			id := n.Name + "/" + k
			if keys[id] == "" {
				if s, ok := current[k].(string); ok && s != "" {
					keys[id] = s
				} else {
					keys[id] = newKey(k)
				}
			}
			secret[k] = keys[id]
		}
		if kafka != nil {
			ks, err := kafka.service(ctx, n.Name, current)
			if err != nil {
				return nil, err
			}
			for k, val := range ks {
				secret[k] = val
			}
		}
		for k, val := range o.Extra[n.Name] {
			secret[k] = val
		}
		if err := workloadRole(ctx, v, o.namespace(), n.Name); err != nil {
			return nil, err
		}
		if err := secretAndPolicy(ctx, v, n.Name, secret); err != nil {
			return nil, fmt.Errorf("provision %s: %w", n.Name, err)
		}
		if o.Kubernetes == nil {
			cred, err := appRoleFor(ctx, v, n.Name, o.Dir)
			if err != nil {
				return nil, fmt.Errorf("provision %s: %w", n.Name, err)
			}
			out[n.Name] = cred
		}
	}
	if err := saveKeys(o.KeysFile, keys); err != nil {
		return nil, err
	}
	if err := workloadRole(ctx, v, o.namespace(), bhvault.Operator); err != nil {
		return nil, err
	}
	if err := envoyIssuerRole(ctx, v); err != nil {
		return nil, err
	}
	// The control plane issues the certificates it serves over SDS,
	// nothing else (and, in a cluster, its own serving certificate).
	if err := putPolicy(ctx, v, bhvault.ControlPlane); err != nil {
		return nil, fmt.Errorf("provision %s: %w", bhvault.ControlPlane, err)
	}
	if o.Kubernetes == nil {
		cpCred, err := appRoleFor(ctx, v, bhvault.ControlPlane, o.Dir)
		if err != nil {
			return nil, fmt.Errorf("provision %s: %w", bhvault.ControlPlane, err)
		}
		out[bhvault.ControlPlane] = cpCred
	}
	if o.Kubernetes != nil {
		if err := setupKubernetes(ctx, v, o.Kubernetes, o.namespace()); err != nil {
			return nil, err
		}
	}
	rlPassword, err := redisUser(ctx, rd, bhvault.RateLimit, o.RateLimitRedisPassword)
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", bhvault.RateLimit, err)
	}
	if err := saveRedisUsers(ctx, rd); err != nil {
		return nil, err
	}
	operator := pki.CertFilesIn(filepath.Join(o.Dir, bhvault.Operator))
	if err := issueOperator(ctx, v, o.namespace(), operator); err != nil {
		return nil, err
	}
	return &Result{Credentials: out, Operator: operator, RootCA: rootCA, RateLimitRedis: RedisUser{User: bhvault.RateLimit, Password: rlPassword}}, nil
}

func newKey(kind string) string {
	if kind == "signing_key" {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		return base64.StdEncoding.EncodeToString(priv.Seed())
	}
	return randomHex(32)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func loadKeys(path string) (map[string]string, error) {
	keys := map[string]string{}
	if path == "" {
		return keys, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

func saveKeys(path string, keys map[string]string) error {
	if path == "" {
		return nil
	}
	b, _ := json.MarshalIndent(keys, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
