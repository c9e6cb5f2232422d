package components_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)

	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatalf("server_version: %v", err)
	}
	t.Logf("PostgreSQL %s on %s", version, pg.Addr())

	if _, err := conn.Exec(ctx, "CREATE TABLE kv (k text PRIMARY KEY, v jsonb NOT NULL)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO kv VALUES ($1, $2)", "answer", map[string]int{"n": 42}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT (v->>'n')::int FROM kv WHERE k = $1", "answer").Scan(&n); err != nil {
		t.Fatalf("select: %v", err)
	}
	if n != 42 {
		t.Fatalf("read back %d, want 42", n)
	}

	// A test may want a database of its own.
	dsn, err := pg.CreateDatabase(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the new database: %v", err)
	}
	defer other.Close(ctx)
	var db string
	if err := other.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "other" {
		t.Fatalf("current_database() = %q, %v; want other", db, err)
	}

	// The password is enforced: a wrong one is refused.
	bad := strings.Replace(pg.DSN(), pg.Password, "wrong", 1)
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Fatal("connected with a wrong password")
	}
}

// The local runner keeps its cluster in .bulkhead/: a second start on the
// same directory finds the data and the password of the first.
func TestPostgresKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// The server may run as another user (when tests run as root): give it a
	// path it can reach, as .bulkhead/ is for the runner.
	dir := filepath.Join(testenv.ReachableTempDir(t), "pg")

	pg, err := components.StartPostgres(ctx, components.PostgresOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
		conn.Close(ctx)
	}
	if err != nil {
		pg.Close()
		t.Fatalf("write: %v", err)
	}
	if err := pg.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	pg2, err := components.StartPostgres(ctx, components.PostgresOptions{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer pg2.Close()
	conn, err = pgx.Connect(ctx, pg2.DSN())
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	var id int
	if err := conn.QueryRow(ctx, "SELECT id FROM kept").Scan(&id); err != nil || id != 7 {
		t.Fatalf("after restart read %d, %v; want 7", id, err)
	}
}

func TestRedisRoundTrip(t *testing.T) {
	t.Parallel()
	r := testenv.NewRedis(t)
	ctx := t.Context()
	c := r.Client()
	defer c.Close()

	if err := c.Set(ctx, "greeting", "hello", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := c.Get(ctx, "greeting").Result()
	if err != nil || got != "hello" {
		t.Fatalf("GET = %q, %v; want hello", got, err)
	}
	ttl, err := c.TTL(ctx, "greeting").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v; want within (0, 1m]", ttl, err)
	}
	// Scripts run: users' quota reservations depend on them.
	n, err := c.Eval(ctx, "return redis.call('INCRBY', KEYS[1], ARGV[1])", []string{"counter"}, 5).Int()
	if err != nil || n != 5 {
		t.Fatalf("EVAL = %d, %v; want 5", n, err)
	}

	// The password is enforced.
	anon := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without password: %v; want NOAUTH", err)
	}
}

func TestVaultKVAndPKI(t *testing.T) {
	t.Parallel()
	v := testenv.NewVault(t)
	ctx := t.Context()
	c, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}

	// KV v2 at secret/ (mounted by the dev server).
	kv := c.KVv2("secret")
	if _, err := kv.Put(ctx, "bulkhead/auth", map[string]any{"pepper": "p3pp3r"}); err != nil {
		t.Fatalf("KV put: %v", err)
	}
	s, err := kv.Get(ctx, "bulkhead/auth")
	if err != nil {
		t.Fatalf("KV get: %v", err)
	}
	if s.Data["pepper"] != "p3pp3r" || s.VersionMetadata == nil || s.VersionMetadata.Version != 1 {
		t.Fatalf("KV read back %v (version %+v); want pepper=p3pp3r at version 1", s.Data, s.VersionMetadata)
	}

	// PKI: a root CA, a role for SPIFFE workload identities, an issued leaf.
	if err := c.Sys().MountWithContext(ctx, "pki", &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		t.Fatalf("mount pki: %v", err)
	}
	root, err := c.Logical().WriteWithContext(ctx, "pki/root/generate/internal", map[string]any{
		"common_name": "bulkhead test root", "ttl": "8760h",
	})
	if err != nil {
		t.Fatalf("generate root: %v", err)
	}
	if _, err := c.Logical().WriteWithContext(ctx, "pki/roles/workload", map[string]any{
		"allowed_uri_sans":   "spiffe://bulkhead.local/*",
		"allow_any_name":     true,
		"require_cn":         false,
		"max_ttl":            "1h",
		"key_type":           "ec",
		"key_bits":           256,
		"server_flag":        true,
		"client_flag":        true,
		"enforce_hostnames":  false,
		"allow_bare_domains": true,
	}); err != nil {
		t.Fatalf("role: %v", err)
	}
	const spiffeID = "spiffe://bulkhead.local/ns/default/sa/auth"
	issued, err := c.Logical().WriteWithContext(ctx, "pki/issue/workload", map[string]any{
		"uri_sans": spiffeID, "ttl": "10m",
	})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	leaf := parseCert(t, issued.Data["certificate"].(string))
	ca := parseCert(t, root.Data["certificate"].(string))
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID {
		t.Fatalf("leaf URI SANs = %v; want [%s]", leaf.URIs, spiffeID)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 11*time.Minute {
		t.Fatalf("leaf lifetime %s; want about 10m", life)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not chain to the root: %v", err)
	}

	// The root token is required.
	anon, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	anon.ClearToken()
	if _, err := anon.KVv2("secret").Get(ctx, "bulkhead/auth"); err == nil {
		t.Fatal("read a secret without a token")
	}
}

func parseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatalf("no PEM block in %q", pemText)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

func TestKubeCRDRoundTrip(t *testing.T) {
	t.Parallel()
	crd := widgetCRD()
	k := testenv.NewKube(t, components.KubeOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	ctx := t.Context()

	dyn, err := dynamic.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "testenv.bulkhead.dev", Version: "v1", Resource: "widgets"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "testenv.bulkhead.dev/v1",
		"kind":       "Widget",
		"metadata":   map[string]any{"name": "first", "namespace": "default"},
		"spec":       map[string]any{"size": int64(3)},
	}}
	if _, err := dyn.Resource(gvr).Namespace("default").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	list, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].GetName() != "first" {
		t.Fatalf("listed %d widgets; want exactly [first]", len(list.Items))
	}
	size, _, _ := unstructured.NestedInt64(list.Items[0].Object, "spec", "size")
	if size != 3 {
		t.Fatalf("spec.size = %d; want 3", size)
	}

	// The CRD's OpenAPI schema is enforced by the real API server.
	bad := obj.DeepCopy()
	bad.SetName("bad")
	_ = unstructured.SetNestedField(bad.Object, int64(-1), "spec", "size")
	_, err = dyn.Resource(gvr).Namespace("default").Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.size") {
		t.Fatalf("create with spec.size=-1: %v; want a validation error naming spec.size", err)
	}
}

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	min := 0.0
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.testenv.bulkhead.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "testenv.bulkhead.dev",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"size": {Type: "integer", Minimum: &min},
						}},
					},
				}},
			}},
		},
	}
}

func TestKafkaProduceConsume(t *testing.T) {
	t.Parallel()
	k := testenv.NewKafka(t, components.KafkaOptions{Topics: []string{"usage"}, DataDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	admin := func(opts ...kgo.Opt) *kgo.Client {
		c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Seeds...),
			kgo.SASL(scram.Auth{User: k.AdminUser, Pass: k.AdminPassword}.AsSha256Mechanism())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}

	// Without credentials, or with wrong ones, the broker serves nothing.
	for name, opts := range map[string][]kgo.Opt{
		"anonymous":      {kgo.SeedBrokers(k.Seeds...)},
		"wrong password": {kgo.SeedBrokers(k.Seeds...), kgo.SASL(scram.Auth{User: k.AdminUser, Pass: "guess"}.AsSha256Mechanism())},
	} {
		c, err := kgo.NewClient(append(opts, kgo.RecordDeliveryTimeout(3*time.Second))...)
		if err != nil {
			t.Fatal(err)
		}
		err = c.ProduceSync(ctx, &kgo.Record{Topic: "usage", Value: []byte("x")}).FirstErr()
		c.Close()
		if err == nil {
			t.Fatalf("%s client produced to the broker", name)
		}
	}

	producer := admin()
	produce := func(ids ...string) {
		for _, id := range ids {
			rec := &kgo.Record{Topic: "usage", Key: []byte(id), Value: []byte(`{"request_id":"` + id + `"}`)}
			if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", id, err)
			}
		}
	}
	consume := func(c *kgo.Client, want ...string) {
		t.Helper()
		var got []string
		for len(got) < len(want) {
			fetches := c.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("consumed %v before the deadline; want %v", got, want)
			}
			if errs := fetches.Errors(); len(errs) > 0 {
				t.Fatalf("fetch: %v", errs[0].Err)
			}
			fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Key)) })
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("consumed %v; want %v in order", got, want)
		}
		if err := c.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit offsets: %v", err)
		}
	}
	group := []kgo.Opt{kgo.ConsumerGroup("ledger"), kgo.ConsumeTopics("usage"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	produce("req-1", "req-2", "req-3")
	consumer := admin(group...)
	consume(consumer, "req-1", "req-2", "req-3")
	consumer.Close()

	// Stopped and started again, the broker keeps its records and the
	// group's offsets: the group goes on from where it committed.
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	produce("req-4")
	consume(admin(group...), "req-4")
}

// A missing binary fails with the make target that builds it.
func TestMissingBinaryNamesMakeTarget(t *testing.T) {
	t.Setenv(components.BinDirEnv, t.TempDir())
	_, err := components.StartVault(t.Context(), components.VaultOptions{})
	if !errors.Is(err, components.ErrMissingBinary) || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("StartVault with no vault binary: %v; want ErrMissingBinary naming `make tools`", err)
	}
	_, err = components.StartKube(t.Context(), components.KubeOptions{})
	if !errors.Is(err, components.ErrMissingBinary) || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("StartKube with no kube-apiserver: %v; want ErrMissingBinary naming `make tools`", err)
	}
}
