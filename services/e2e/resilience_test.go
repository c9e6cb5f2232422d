package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/api"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
)

// A client that disconnects mid-stream: the generation stops upstream
// (inference reports the call cancelled) and the usage served so far is
// in the ledger.
func TestDisconnectMidStream(t *testing.T) {
	// A slow engine and a short keep-alive: the silences between pieces
	// carry ": keep-alive" comments.
	p := stack.StartPlatform(t, stack.PlatformOptions{
		Inference: inference.Options{TokenInterval: 30 * time.Millisecond},
		API:       api.Options{KeepAlive: 10 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(t.Context())
	j, _ := json.Marshal(chatBody(map[string]any{"max_tokens": 4000, "stream": true, "seed": 11}))
	req, _ := http.NewRequestWithContext(ctx, "POST", p.APIURL+"/v1/chat/completions", bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+p.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	chunks, keepAlives := 0, 0
	for chunks < 10 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			chunks++
		}
		if sc.Text() == ": keep-alive" {
			keepAlives++
		}
	}
	cancel()
	if keepAlives == 0 {
		t.Error("no ': keep-alive' comment in the silences of the stream")
	}
	resp.Body.Close()

	// The ledger has the request, with what was served: more than the
	// client read, far less than 4000 tokens.
	var usage map[string]any
	testenv.Eventually(t, 30*time.Second, "the disconnected request in the ledger", func() error {
		usage = do(t, t.Context(), "GET", p.APIURL+"/v1/usage", p.Key, nil).json(t)["total"].(map[string]any)
		return testenv.Until(int(usage["requests"].(float64)) == 1, "usage %v", usage)
	})
	if c := int(usage["completion_tokens"].(float64)); c < 5 || c > 1000 {
		t.Fatalf("%d completion tokens recorded for a stream cut after ~10 chunks", c)
	}
	// Upstream, the generation ended as cancelled.
	cancelled := 0
	for _, name := range []string{"inference-1", "inference-2"} {
		cancelled += metric(t, p, name, `bulkhead_inference_requests_total{`, `finish="error:Canceled"`)
	}
	if cancelled != 1 {
		t.Fatalf("inference saw %d cancelled generations; want 1", cancelled)
	}
}

// scrape returns a service's Prometheus exposition.
func scrape(t testing.TB, p *stack.Platform, instance string) string {
	t.Helper()
	srv := httptest.NewServer(p.Services[instance].Runtime().Telemetry.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sum adds the values of the lines that start with prefix and contain
// label.
func sum(exposition, prefix, label string) float64 {
	var n float64
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, label) {
			var v float64
			fields := strings.Fields(line)
			json.Unmarshal([]byte(fields[len(fields)-1]), &v)
			n += v
		}
	}
	return n
}

// metric reads a counter from a service's Prometheus endpoint.
func metric(t *testing.T, p *stack.Platform, instance, prefix, label string) int {
	t.Helper()
	return int(sum(scrape(t, p, instance), prefix, label))
}

// histogram reads a histogram's sum and count.
func histogram(t testing.TB, p *stack.Platform, instance, name string) (float64, int) {
	t.Helper()
	e := scrape(t, p, instance)
	return sum(e, name+"_sum", ""), int(sum(e, name+"_count", ""))
}

// One inference replica killed mid-traffic: no client request fails. The
// mesh does it (policies/mesh: BackendPolicy inference): a generation that
// had not committed is retried on the other replica, and the dead one is
// ejected.
func TestInferenceReplicaKilled(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	url := p.APIURL + "/v1/chat/completions"
	var ok, failed, afterKill atomic.Int64
	var killed atomic.Bool
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Distinct conversations spread over both replicas.
				body := chatBody(map[string]any{"max_tokens": 20, "seed": i})
				body["messages"] = []map[string]any{{"role": "user", "content": "light " + strings.Repeat("x", w*100+i%50)}}
				r := do(t, t.Context(), "POST", url, p.Key, body)
				if r.status == 200 {
					ok.Add(1)
					if killed.Load() {
						afterKill.Add(1)
					}
				} else {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, string(r.body))
				}
			}
		}()
	}
	// Kill one replica once both serve, and stop once the survivor has
	// served 20 requests on its own.
	testenv.Eventually(t, time.Minute, "requests served before the kill", func() error {
		return testenv.Until(ok.Load() >= 20 || failed.Load() > 0, "%d served", ok.Load())
	})
	p.Services["inference-1"].Kill()
	killed.Store(true)
	testenv.Eventually(t, time.Minute, "requests served after the kill", func() error {
		return testenv.Until(afterKill.Load() >= 20 || failed.Load() > 0, "%d served since", afterKill.Load())
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests served, %d after the kill, none failed", ok.Load(), afterKill.Load())
}
