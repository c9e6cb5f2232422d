package controlplane_test

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
)

// BenchmarkRateLimitDecisions measures envoyproxy/ratelimit's decisions per
// second with the configuration the control plane generates (the test's
// ai gateway: per key, free tier, client range, shadow header, per key on
// the chat route) and Redis, both on loopback: each decision is one
// ShouldRateLimit with the descriptors the gateway's route actions make of
// a chat request (3 of them), from 64 concurrent callers over 4
// connections, one distinct key per call so that every decision is a
// counting one (limits high enough never to be reached).
//
//	go test -run '^$' -bench RateLimitDecisions -benchtime 20000x ./control-plane/
func BenchmarkRateLimitDecisions(b *testing.B) {
	redis, err := components.StartRedis(b.Context(), components.RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { redis.Close() })
	m := startMesh(b, map[string]string{"mesh.yaml": rateLimitMesh, "limits.yaml": limits(1 << 30)})
	rl, err := components.StartRateLimit(b.Context(), components.RateLimitOptions{XDSAddress: m.cp.XDSAddr(), RedisAddr: redis.Addr, RedisPassword: redis.Password})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rl.Close() })
	waitRule(b, rl, "default/ai-limits/per-key", 1<<30)
	const domain = "default/ai/10082"
	rc := gatewayRoutes(b, m, domain)
	route := envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/v1/chat/completions"})
	descriptors := func(i int64) []*commonrlv3.RateLimitDescriptor {
		req := envoysim.Request{Authority: "x", Path: "/v1/chat/completions", Remote: netip.MustParseAddr("192.0.2.10"), Headers: map[string]string{
			"x-bulkhead-key-id": fmt.Sprintf("key-%d", i), "x-bulkhead-account-id": fmt.Sprintf("acct-%d", i), "x-bulkhead-tier": "standard",
		}}
		ds, err := envoysim.Descriptors(route.GetRoute().GetRateLimits(), req)
		if err != nil {
			panic(err)
		}
		return ds
	}
	conns := make([]rlsv3.RateLimitServiceClient, 4)
	for i := range conns {
		cc, err := grpc.NewClient(rl.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		conns[i] = rlsv3.NewRateLimitServiceClient(cc)
	}
	var next, over atomic.Int64
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			resp, err := conns[i%int64(len(conns))].ShouldRateLimit(b.Context(), &rlsv3.RateLimitRequest{Domain: domain, Descriptors: descriptors(i), HitsAddend: 1})
			if err != nil {
				b.Error(err)
				return
			}
			if resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
				over.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	if over.Load() > 0 {
		b.Fatalf("%d decisions over a limit that cannot be reached", over.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
}
