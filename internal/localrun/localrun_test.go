package localrun_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulkhead-mesh/bulkhead/internal/localrun"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// syncBuffer collects the progress report written by Run's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readEnv parses the `export K='V'` lines of .bulkhead/env.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = strings.Trim(v, "'")
	}
	return env
}

func TestUpStartsDependenciesAndStopsThem(t *testing.T) {
	// PostgreSQL may run as another user when tests run as root: the state
	// directory must be reachable, as .bulkhead/ in the repository is.
	state := filepath.Join(testenv.ReachableTempDir(t), ".bulkhead")
	envPath := filepath.Join(state, "env")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	mesh := filepath.Join(testenv.ReachableTempDir(t), "mesh")
	if err := os.MkdirAll(mesh, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mesh, "svc.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: chat}\nspec:\n  ports: [{name: grpc, port: 9000}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- localrun.Run(ctx, localrun.Options{StateDir: state, Out: out, MeshDir: mesh, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0"})
	}()

	deadline := time.After(2 * time.Minute)
	for !strings.Contains(out.String(), "press Ctrl-C to stop") {
		select {
		case err := <-done:
			t.Fatalf("Run returned before it was ready: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("not ready after 2m:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, name := range []string{"postgres", "redis", "vault", "kafka", "control"} {
		if !strings.Contains(out.String(), "  "+name) {
			t.Errorf("report does not mention %s:\n%s", name, out)
		}
	}
	st, err := os.Stat(envPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %s; credentials need 0600", envPath, st.Mode().Perm())
	}
	env := readEnv(t, envPath)

	// Every dependency answers with the credentials written in env.
	conn, err := pgx.Connect(ctx, env["BULKHEAD_POSTGRES_DSN"])
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("postgres SELECT 1: %d, %v", one, err)
	}
	conn.Close(ctx)

	rdb := redis.NewClient(&redis.Options{Addr: env["BULKHEAD_REDIS_ADDR"], Password: env["BULKHEAD_REDIS_PASSWORD"]})
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	rdb.Close()

	vcfg := vault.DefaultConfig()
	vcfg.Address = env["VAULT_ADDR"]
	vc, err := vault.NewClient(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(env["VAULT_TOKEN"])
	if _, err := vc.KVv2("secret").Put(ctx, "smoke", map[string]any{"ok": "yes"}); err != nil {
		t.Fatalf("vault: %v", err)
	}

	// The control plane answers on its admin endpoint with the mesh's status.
	resp, err := http.Get("http://" + env["BULKHEAD_ADMIN_ADDR"] + "/healthz")
	for i := 0; err == nil && resp.StatusCode != 200 && i < 100; i++ {
		resp.Body.Close()
		time.Sleep(50 * time.Millisecond)
		resp, err = http.Get("http://" + env["BULKHEAD_ADMIN_ADDR"] + "/healthz")
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control plane admin: %v %v", resp, err)
	}
	resp.Body.Close()

	kc, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(env["BULKHEAD_KAFKA_SEEDS"], ",")...))
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Ping(ctx); err != nil {
		t.Fatalf("kafka: %v", err)
	}
	kc.Close()

	// A second `bulkhead up` on the same state is refused, not interleaved.
	err = localrun.Run(ctx, localrun.Options{StateDir: state, Out: &syncBuffer{}})
	if err == nil || !strings.Contains(err.Error(), "another `bulkhead up` is running") {
		t.Fatalf("second Run: %v; want the lock error", err)
	}

	// Ctrl-C: everything stops, in reverse order, and the credentials go.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within 1m of cancellation")
	}
	report := out.String()
	if i, j := strings.Index(report, "postgres  stopped"), strings.Index(report, "kafka     stopped"); i < 0 || j < 0 || j > i {
		t.Errorf("want kafka stopped before postgres:\n%s", report)
	}
	if _, err := os.Stat(envPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after stop: %v", envPath, err)
	}
	shortCtx, shortCancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer shortCancel()
	if c, err := pgx.Connect(shortCtx, env["BULKHEAD_POSTGRES_DSN"]); err == nil {
		c.Close(shortCtx)
		t.Fatal("postgres still accepts connections after stop")
	}
}
