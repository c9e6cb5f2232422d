package testenv_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// The cost of a throwaway server, start to stop: what a test package pays for
// each one it uses. make bench runs these.

func benchStartStop(b *testing.B, start func() (interface{ Close() error }, error)) {
	for b.Loop() {
		s, err := start()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPostgresStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return testenv.StartPostgres(b.Context(), testenv.PostgresOptions{})
	})
}

func BenchmarkRedisStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return testenv.StartRedis(b.Context(), testenv.RedisOptions{})
	})
}

func BenchmarkVaultStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return testenv.StartVault(b.Context(), testenv.VaultOptions{})
	})
}

func BenchmarkKubeStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return testenv.StartKube(b.Context(), testenv.KubeOptions{})
	})
}

func BenchmarkKafkaStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return testenv.StartKafka(testenv.KafkaOptions{Topics: []string{"usage"}})
	})
}
