package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
)

// startTimeout bounds each server start in tests; a loaded 2-core machine
// starting several packages at once stays well under it.
const startTimeout = 2 * time.Minute

func startCtx(t testing.TB) (context.Context, context.CancelFunc) {
	ctx := t.Context()
	return context.WithTimeout(ctx, startTimeout)
}

// ReachableTempDir returns a new directory that every local user can
// traverse (mode 0755), removed when the test ends. PostgreSQL runs as
// another user when tests run as root, and t.TempDir's parents are private.
func ReachableTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "bulkhead-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// start runs a Start function for a test: bounded in time, fatal on error,
// stopped by t.Cleanup.
func start[S interface{ Close() error }](t testing.TB, what string, fn func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := startCtx(t)
	defer cancel()
	s, err := fn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: stopping %s: %v", what, err)
		}
	})
	return s
}

// NewPostgres starts a throwaway PostgreSQL for the test and stops it when
// the test ends.
func NewPostgres(t testing.TB) *components.Postgres {
	t.Helper()
	return start(t, "postgres", func(ctx context.Context) (*components.Postgres, error) {
		return components.StartPostgres(ctx, components.PostgresOptions{})
	})
}

// NewRedis starts a throwaway Redis for the test.
func NewRedis(t testing.TB) *components.Redis {
	t.Helper()
	return start(t, "redis", func(ctx context.Context) (*components.Redis, error) {
		return components.StartRedis(ctx, components.RedisOptions{})
	})
}

// NewVault starts a throwaway Vault dev server for the test.
func NewVault(t testing.TB) *components.Vault {
	t.Helper()
	return start(t, "vault", func(ctx context.Context) (*components.Vault, error) {
		return components.StartVault(ctx, components.VaultOptions{})
	})
}

// NewKube starts a throwaway kube-apiserver and etcd for the test.
func NewKube(t testing.TB, opts components.KubeOptions) *components.Kube {
	t.Helper()
	return start(t, "kube-apiserver", func(ctx context.Context) (*components.Kube, error) {
		return components.StartKube(ctx, opts)
	})
}

// NewKafka starts an in-process Kafka broker for the test.
func NewKafka(t testing.TB, opts components.KafkaOptions) *components.Kafka {
	t.Helper()
	return start(t, "kafka", func(context.Context) (*components.Kafka, error) {
		return components.StartKafka(opts)
	})
}
