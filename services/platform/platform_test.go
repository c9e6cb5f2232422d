package platform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func TestFlagsNameWhatIsWrong(t *testing.T) {
	base := []string{"--grpc-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-address", "127.0.0.1:1"}, "--grpc-address is required"},
		{[]string{"--grpc-address", "127.0.0.1:0", "--xds-address", ""}, "--xds-address is required"},
		{append(base, "--log-level", "loud"), `--log-level "loud": want debug, info, warn or error`},
		{append(base, "extra"), `unexpected argument "extra"`},
		{append(base, "--nope"), "flag provided but not defined: -nope"},
	} {
		_, err := platform.ParseFlags("svc", c.args, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want %q", c.args, err, c.want)
		}
	}
	cfg, err := platform.ParseFlags("svc", append(base, "--service", "svc-cache"), nil)
	if err != nil || cfg.Service != "svc-cache" || cfg.Namespace != "default" || !strings.HasPrefix(cfg.Instance, "svc-") {
		t.Fatalf("%+v %v", cfg, err)
	}
}

// A Deployment sets the flags every service shares through the
// environment; the command line wins, and a bad value names its variable.
func TestFlagsFromTheEnvironment(t *testing.T) {
	t.Setenv("BULKHEAD_GRPC_ADDRESS", "198.18.0.7:9000")
	t.Setenv("BULKHEAD_XDS_ADDRESS", "control-plane.bulkhead-system.svc:18000")
	t.Setenv("BULKHEAD_XDS_TLS", "true")
	t.Setenv("BULKHEAD_NAMESPACE", "bulkhead")
	t.Setenv("BULKHEAD_HEALTH_ADDRESS", "198.18.0.7:9001")
	cfg, err := platform.ParseFlags("svc", []string{"--namespace", "other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCAddress != "198.18.0.7:9000" || cfg.XDSAddress != "control-plane.bulkhead-system.svc:18000" || !cfg.XDSTLS ||
		cfg.HealthAddress != "198.18.0.7:9001" || cfg.Namespace != "other" {
		t.Fatalf("%+v", cfg)
	}
	t.Setenv("BULKHEAD_XDS_TLS", "sometimes")
	if _, err := platform.ParseFlags("svc", nil, nil); err == nil || !strings.Contains(err.Error(), `$BULKHEAD_XDS_TLS (--xds-tls) "sometimes"`) {
		t.Fatalf("a bad boolean in the environment: %v", err)
	}
}

func TestStartWithoutVaultSaysWhy(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "sid")
	os.WriteFile(secret, []byte("x"), 0o600)
	t.Setenv("VAULT_ADDR", "")
	for _, c := range []struct {
		vault pki.VaultConfig
		want  string
	}{
		{pki.VaultConfig{}, "--vault-address (or VAULT_ADDR) is required"},
		{pki.VaultConfig{Address: "http://127.0.0.1:1"}, "--vault-role-id and --vault-secret-id-file are required"},
		{pki.VaultConfig{Address: "http://127.0.0.1:1", RoleID: "r", SecretIDFile: secret}, "vault AppRole login at http://127.0.0.1:1"},
	} {
		_, err := platform.Start(t.Context(), platform.Config{Name: "svc", GRPCAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:1", Vault: c.vault},
			func(context.Context, *platform.Runtime) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.vault, err, c.want)
		}
	}
}

func TestSecretsNeverPrintValues(t *testing.T) {
	s := platform.Secrets{"pepper": "hunter2", "redis_url": "redis://u:p@h"}
	if strings.Contains(fmt.Sprint(s), "hunter2") || strings.Contains(fmt.Sprintf("%v %+v", s, s), "hunter2") {
		t.Fatal("Secrets prints its values")
	}
	if _, err := s.Get("database_url"); err == nil || !strings.Contains(err.Error(), `no "database_url" (it has: pepper, redis_url)`) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestMigrateAppliesEachFileOnceAndAllOrNothing(t *testing.T) {
	pg := testenv.NewPostgres(t)
	pool, err := pgxpool.New(t.Context(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fs := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte(`CREATE TABLE a (n int); INSERT INTO a VALUES (1);`)},
		"migrations/0002_b.sql": {Data: []byte(`INSERT INTO a VALUES (2);`)},
	}
	for range 2 {
		if err := platform.Migrate(t.Context(), pool, fs); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM a`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows (%v); want each migration applied once", n, err)
	}
	fs["migrations/0003_bad.sql"] = &fstest.MapFile{Data: []byte(`INSERT INTO a VALUES (3); INSERT INTO nowhere VALUES (1);`)}
	err = platform.Migrate(t.Context(), pool, fs)
	if err == nil || !strings.Contains(err.Error(), "migrate migrations/0003_bad.sql") {
		t.Fatalf("bad migration: %v", err)
	}
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM a`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("a failed migration left %d rows; want 2", n)
	}
}
