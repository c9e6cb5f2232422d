package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authzv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/auth"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/users"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// cacheHitLoad drives the cache-hit path: a request answered from the
// response cache goes through api (key check with auth, JSON), chat
// (identity, resolve, reserve and commit with users, Redis lookup) and
// back, with no engine time at all. 200 clients on loopback; everything,
// load generator included, shares the machine. every is how often each
// client sends (0: as fast as it can, closed loop).
func cacheHitLoad(b *testing.B, every time.Duration) {
	p := stack.StartPlatform(b, stack.PlatformOptions{})
	url := p.APIURL + "/v1/chat/completions"
	body, _ := json.Marshal(chatBody(map[string]any{"temperature": 0, "max_tokens": 32}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	send := func() (time.Duration, error) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Key)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"prompt_cache_miss_tokens":0`)) {
			b = append([]byte(resp.Status+" "), b...)
			return 0, &benchErr{string(b)}
		}
		return time.Since(t0), err
	}
	// Warm: the cache entry, the connections, every service's mesh state.
	if _, err := sendWarm(client, url, p.Key, body); err != nil {
		b.Fatal(err)
	}
	for range 50 {
		if _, err := send(); err != nil {
			b.Fatal(err)
		}
	}
	const clients = 200
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if every > 0 {
				// Spread the clients' phases over the period.
				time.Sleep(time.Duration(rand.Int64N(int64(every))))
				tick = time.NewTicker(every)
				defer tick.Stop()
			}
			for range work {
				if tick != nil {
					<-tick.C
				}
				d, err := send()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	}
}

// BenchmarkCacheHitPath: closed loop, 200 clients as fast as they go: the
// throughput of the path, and its latency at saturation (mostly queueing).
func BenchmarkCacheHitPath(b *testing.B) { cacheHitLoad(b, 0) }

// BenchmarkCacheHitPathAt1000 is the added latency at a load the machine
// carries: 200 clients each sending every 200 ms (1,000 requests/s).
func BenchmarkCacheHitPathAt1000(b *testing.B) { cacheHitLoad(b, 200*time.Millisecond) }

// BenchmarkCacheHitPathAt500: each client every 400 ms (500 requests/s).
func BenchmarkCacheHitPathAt500(b *testing.B) { cacheHitLoad(b, 400*time.Millisecond) }

type benchErr struct{ s string }

func (e *benchErr) Error() string { return e.s }

func sendWarm(c *http.Client, url, key string, body []byte) (int, error) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// BenchmarkTimeToFirstToken measures what the platform adds to the
// engine's own time to first token: a streaming request's first content
// chunk at the client, minus the engine's time to its first piece as
// inference measured it (bulkhead.inference.time_to_first_token).
func BenchmarkTimeToFirstToken(b *testing.B) {
	p := stack.StartPlatform(b, stack.PlatformOptions{})
	url := p.APIURL + "/v1/chat/completions"
	client := &http.Client{}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body, _ := json.Marshal(chatBody(map[string]any{"max_tokens": 8, "seed": i, "stream": true}))
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Key)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"content":"`) && !strings.Contains(sc.Text(), `"role":"assistant"`) {
				total += time.Since(t0)
				break
			}
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.StopTimer()
	var engineSum float64
	var engineCount int
	for _, name := range []string{"inference-1", "inference-2"} {
		s, c := histogram(b, p, name, "bulkhead_inference_time_to_first_token_seconds")
		engineSum += s
		engineCount += c
	}
	if engineCount != b.N {
		b.Fatalf("engine measured %d first tokens; want %d", engineCount, b.N)
	}
	client0 := total.Seconds() / float64(b.N)
	engine := engineSum / float64(engineCount)
	b.ReportMetric(client0*1000, "ttft-ms")
	b.ReportMetric(engine*1000, "engine-ttft-ms")
	b.ReportMetric((client0-engine)*1000, "added-ms")
}

// BenchmarkAuthCheckAt1000 is auth's Check on the cache-hit path (the key's
// identity in Redis, a reused identity token), as a gateway's ext_authz
// calls it, at 1,000 requests/s open loop (100 callers, each every 100 ms),
// over the mesh in mTLS. Reported: p50, p99.
func BenchmarkAuthCheckAt1000(b *testing.B) {
	s := stack.New(b)
	s.StartService("users", users.Setup(), stack.Options{Instance: "users-1"})
	s.StartService("auth", auth.Setup(&auth.Options{}), stack.Options{Instance: "auth-1"})
	ctx := b.Context()
	acct, err := usersv1.NewUsersServiceClient(s.Dial("users")).CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "bench", Tier: "standard"}, grpc.WaitForReady(true))
	if err != nil {
		b.Fatal(err)
	}
	key, err := authv1.NewAuthServiceClient(s.Dial("auth")).CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: acct.Account.Id}, grpc.WaitForReady(true))
	if err != nil {
		b.Fatal(err)
	}
	certs := issueWith(b, s, bhvault.EnvoyIssuerRole, "gateway-ai")
	cc, err := provision.MeshClient{XDSAddress: s.ControlPlane.XDSAddr(), NodeID: "gw-bench", Name: "gw-bench", Account: "gateway-ai", Certs: certs, XDSTLS: true}.Dial("auth")
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	c := authzv3.NewAuthorizationClient(cc)
	req := &authzv3.CheckRequest{Attributes: &authzv3.AttributeContext{Request: &authzv3.AttributeContext_Request{Http: &authzv3.AttributeContext_HttpRequest{
		Method: "POST", Path: "/v1/chat/completions", Headers: map[string]string{"authorization": "Bearer " + key.Secret},
	}}}}
	for range 100 { // warm: the cache entry, the connection
		if _, err := c.Check(ctx, req, grpc.WaitForReady(true)); err != nil {
			b.Fatal(err)
		}
	}
	const callers, every = 100, 100 * time.Millisecond
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(every))))
			tick := time.NewTicker(every)
			defer tick.Stop()
			for range work {
				<-tick.C
				t0 := time.Now()
				resp, err := c.Check(ctx, req)
				d := time.Since(t0)
				if err != nil || resp.GetOkResponse() == nil {
					b.Errorf("check: %v %v", resp, err)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
