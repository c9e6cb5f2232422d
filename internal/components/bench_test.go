package components_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
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
		return components.StartPostgres(b.Context(), components.PostgresOptions{})
	})
}

func BenchmarkRedisStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return components.StartRedis(b.Context(), components.RedisOptions{})
	})
}

func BenchmarkVaultStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return components.StartVault(b.Context(), components.VaultOptions{})
	})
}

func BenchmarkKubeStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return components.StartKube(b.Context(), components.KubeOptions{})
	})
}

func BenchmarkKafkaStartStop(b *testing.B) {
	benchStartStop(b, func() (interface{ Close() error }, error) {
		return components.StartKafka(components.KafkaOptions{Topics: []string{"usage"}})
	})
}
