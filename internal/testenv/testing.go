package testenv

import (
	"context"
	"testing"
	"time"
)

// startTimeout bounds each server start in tests; a loaded 2-core machine
// starting several packages at once stays well under it.
const startTimeout = 2 * time.Minute

func startCtx(t testing.TB) (context.Context, context.CancelFunc) {
	ctx := t.Context()
	return context.WithTimeout(ctx, startTimeout)
}

// closer is what every server here has.
type closer interface{ Close() error }

func cleanup(t testing.TB, what string, c closer) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testenv: stopping %s: %v", what, err)
		}
	})
}

// NewPostgres starts a throwaway PostgreSQL for the test and stops it when
// the test ends.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	ctx, cancel := startCtx(t)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, "postgres", pg)
	return pg
}

// NewRedis starts a throwaway Redis for the test.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	ctx, cancel := startCtx(t)
	defer cancel()
	r, err := StartRedis(ctx, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, "redis", r)
	return r
}

// NewVault starts a throwaway Vault dev server for the test.
func NewVault(t testing.TB) *Vault {
	t.Helper()
	ctx, cancel := startCtx(t)
	defer cancel()
	v, err := StartVault(ctx, VaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, "vault", v)
	return v
}

// NewKube starts a throwaway kube-apiserver and etcd for the test.
func NewKube(t testing.TB, opts KubeOptions) *Kube {
	t.Helper()
	ctx, cancel := startCtx(t)
	defer cancel()
	k, err := StartKube(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, "kube-apiserver", k)
	return k
}

// NewKafka starts an in-process Kafka broker for the test.
func NewKafka(t testing.TB, opts KafkaOptions) *Kafka {
	t.Helper()
	k, err := StartKafka(opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, "kafka", k)
	return k
}
