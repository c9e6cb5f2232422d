package incluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

// Names of the stores' administrative Secrets, made once by the bootstrap
// and mounted by the servers that need them at their first start.
const (
	// PostgresSecret: password (the superuser "postgres").
	PostgresSecret = "postgres-admin"
	// RedisSecret: password (the default user) and users.acl, the ACL file
	// Redis starts with the first time (then keeps its own).
	RedisSecret = "redis-admin"
	// RateLimitSecret: REDIS_AUTH (user:password) of the rate-limit
	// service's Redis user; envoyproxy/ratelimit cannot read Vault.
	RateLimitSecret = "ratelimit-redis"
	// KafkaSecret: user and password of Kafka's superuser, which the
	// broker starts with and provisioning creates the services' users
	// and ACLs as.
	KafkaSecret = "kafka-admin"
	// KafkaAdminUser is that superuser's name.
	KafkaAdminUser = "admin"
)

// BootstrapOptions says where the platform's parts are in the cluster.
type BootstrapOptions struct {
	// Namespace of the platform (its pod's namespace).
	Namespace string
	// VaultService, PostgresService, RedisService, KafkaService are the
	// Services' names in Namespace (default vault, postgres, redis, kafka).
	VaultService, PostgresService, RedisService, KafkaService string
	// ControlPlaneNamespace and ControlPlaneServiceAccount: where the
	// control plane runs; ControlPlaneService its Service (default
	// control-plane), whose names its serving certificate carries.
	ControlPlaneNamespace, ControlPlaneServiceAccount, ControlPlaneService string
	// ClusterDomain (default cluster.local).
	ClusterDomain string
	// Log receives progress.
	Log *slog.Logger
}

func (o *BootstrapOptions) defaults() error {
	if o.Namespace == "" {
		return fmt.Errorf("--namespace is required (the platform's namespace)")
	}
	for _, d := range []struct {
		p   *string
		def string
	}{
		{&o.VaultService, "vault"}, {&o.PostgresService, "postgres"}, {&o.RedisService, "redis"}, {&o.KafkaService, "kafka"},
		{&o.ControlPlaneNamespace, o.Namespace}, {&o.ControlPlaneServiceAccount, "bulkhead-control-plane"},
		{&o.ControlPlaneService, "control-plane"}, {&o.ClusterDomain, "cluster.local"},
	} {
		if *d.p == "" {
			*d.p = d.def
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return nil
}

// StorePasswords makes the stores' administrative Secrets if they do not
// exist yet: the servers wait for them at their first start.
func StorePasswords(ctx context.Context, cs kubernetes.Interface, namespace string) (StoreAdmins, error) {
	var a StoreAdmins
	pg, _, err := ensureSecret(ctx, cs, namespace, PostgresSecret, func() (map[string][]byte, error) {
		return map[string][]byte{"password": []byte(randomHex(24))}, nil
	})
	if err != nil {
		return a, err
	}
	rd, _, err := ensureSecret(ctx, cs, namespace, RedisSecret, func() (map[string][]byte, error) {
		pw := randomHex(24)
		return map[string][]byte{
			"password":  []byte(pw),
			"users.acl": []byte("user default on >" + pw + " ~* &* +@all\n"),
		}, nil
	})
	if err != nil {
		return a, err
	}
	kf, _, err := ensureSecret(ctx, cs, namespace, KafkaSecret, func() (map[string][]byte, error) {
		return map[string][]byte{"user": []byte(KafkaAdminUser), "password": []byte(randomHex(24))}, nil
	})
	if err != nil {
		return a, err
	}
	return StoreAdmins{Postgres: string(pg["password"]), Redis: string(rd["password"]),
		KafkaUser: string(kf["user"]), KafkaPassword: string(kf["password"])}, nil
}

// StoreAdmins are the stores' administrative credentials.
type StoreAdmins struct {
	Postgres, Redis          string
	KafkaUser, KafkaPassword string
}

// Bootstrap sets the platform up in its cluster, idempotently: the stores'
// passwords, Vault's TLS, Vault initialised and unsealed, then provisioning
// (per-service databases, Redis users, Vault's PKI, policies, secrets and
// Kubernetes auth roles). A second run changes nothing that works.
func Bootstrap(ctx context.Context, cs kubernetes.Interface, o BootstrapOptions) error {
	if err := o.defaults(); err != nil {
		return err
	}
	log := o.Log
	admins, err := StorePasswords(ctx, cs, o.Namespace)
	if err != nil {
		return err
	}
	pgPassword, redisPassword := admins.Postgres, admins.Redis
	log.Info("store passwords", "secrets", []string{PostgresSecret, RedisSecret, KafkaSecret})

	tlsData, _, err := ensureSecret(ctx, cs, o.Namespace, VaultTLSSecret, func() (map[string][]byte, error) {
		d, err := vaultTLS(o.Namespace, o.VaultService)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{"tls.crt": d["tls.crt"], "tls.key": d["tls.key"], "ca.crt": d["ca.crt"]}, nil
	})
	if err != nil {
		return err
	}
	caPEM := tlsData["ca.crt"]
	for _, ns := range []string{o.Namespace, o.ControlPlaneNamespace} {
		if err := ensureConfigMap(ctx, cs, ns, VaultCAConfigMap, map[string]string{"ca.crt": string(caPEM)}); err != nil {
			return err
		}
	}
	log.Info("vault TLS", "secret", VaultTLSSecret, "ca", VaultCAConfigMap)

	vaultAddr := "https://" + net.JoinHostPort(o.svc(o.VaultService), "8200")
	v, err := vaultClient(vaultAddr, caPEM)
	if err != nil {
		return err
	}
	if err := waitVault(ctx, log, v); err != nil {
		return err
	}
	token, err := initAndUnseal(ctx, log, cs, o.Namespace, v)
	if err != nil {
		return err
	}

	pgHost := o.svc(o.PostgresService)
	adminDSN := (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", pgPassword), Host: net.JoinHostPort(pgHost, "5432"), Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	if err := retry(ctx, log, "postgres", func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}); err != nil {
		return err
	}
	redisAddr := net.JoinHostPort(o.svc(o.RedisService), "6379")
	if err := retry(ctx, log, "redis", func(ctx context.Context) error {
		rd := redis.NewClient(&redis.Options{Addr: redisAddr, Password: redisPassword})
		defer rd.Close()
		return rd.Ping(ctx).Err()
	}); err != nil {
		return err
	}

	kafka := &provision.KafkaAdmin{Seeds: []string{net.JoinHostPort(o.svc(o.KafkaService), "9092")}, User: admins.KafkaUser, Password: admins.KafkaPassword}
	if err := retry(ctx, log, "kafka", func(ctx context.Context) error {
		return provision.PingKafka(ctx, *kafka)
	}); err != nil {
		return err
	}

	// provision's Vault clients read the CA from the environment.
	dir, err := os.MkdirTemp("", "bulkhead-bootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "vault-ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return err
	}
	os.Setenv("VAULT_CACERT", caFile)
	var rlPassword string
	if cur, err := cs.CoreV1().Secrets(o.Namespace).Get(ctx, RateLimitSecret, getOpts); err == nil {
		_, rlPassword, _ = strings.Cut(string(cur.Data["REDIS_AUTH"]), ":")
	}
	cp := o.ControlPlaneService + "." + o.ControlPlaneNamespace
	res, err := provision.Provision(ctx, provision.Options{
		PostgresAdminDSN:       adminDSN,
		PostgresHost:           pgHost,
		PostgresPort:           5432,
		RedisAddr:              redisAddr,
		RedisPassword:          redisPassword,
		VaultAddr:              vaultAddr,
		VaultToken:             token,
		Dir:                    filepath.Join(dir, "provision"),
		Namespace:              o.Namespace,
		RateLimitRedisPassword: rlPassword,
		Kafka:                  kafka,
		Kubernetes: &provision.KubernetesAuth{
			Host:                       "https://kubernetes.default.svc",
			ControlPlaneNamespace:      o.ControlPlaneNamespace,
			ControlPlaneServiceAccount: o.ControlPlaneServiceAccount,
			ControlPlaneDNSNames:       []string{cp + ".svc", cp + ".svc." + o.ClusterDomain},
		},
	})
	if err != nil {
		return err
	}
	auth := res.RateLimitRedis.User + ":" + res.RateLimitRedis.Password
	if err := putSecret(ctx, cs, o.Namespace, RateLimitSecret, map[string][]byte{"REDIS_AUTH": []byte(auth)}); err != nil {
		return err
	}
	log.Info("provisioned", "services", len(provision.Services), "vault", vaultAddr, "postgres", pgHost, "redis", redisAddr, "kafka", kafka.Seeds)
	return nil
}

// svc is a Service's name in the platform's namespace.
func (o *BootstrapOptions) svc(name string) string {
	return name + "." + o.Namespace + ".svc"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
