package e2e_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// 200 concurrent requests against a budget that admits exactly 50: exactly
// 50 are served, the others refused with 402 (or 429), and the ledger adds
// up to the tokens served, to the micro, though the broker delivers every
// usage event twice.
func TestBudgetUnderConcurrency(t *testing.T) {
	// Every request costs exactly its hold: a fixed seed, a max_tokens
	// the model always reaches, and no prefix cache to bill part of the
	// prompt at the cache-hit price.
	p := stack.StartPlatform(t, stack.PlatformOptions{Inference: inference.Options{PrefixCacheBlocks: -1}})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"
	body := chatBody(map[string]any{"max_tokens": 5, "temperature": 0.7, "seed": 1})
	cal := do(t, ctx, "POST", url, p.Key, body).json(t)
	prompt, completion, _, _, _ := usageOf(t, cal)
	if completion != 5 || cal["choices"].([]any)[0].(map[string]any)["finish_reason"] != "length" {
		t.Fatalf("calibration: %v", cal)
	}
	// deepseek-chat prices, deepseek-v4-flash's (micro-units per million
	// tokens): 140000 input, 280000 output; the hold is rounded up like
	// the cost.
	hold := int64(math.Ceil((float64(prompt)*140000 + 5*280000) / 1e6))
	acct, key := newKey(t, p, &usersv1.CreateAccountRequest{Name: "fifty", Tier: "standard", BalanceMicros: 50 * hold,
		Limits: &usersv1.Limits{MaxConcurrentRequests: 1000, TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40}})

	var mu sync.Mutex
	statuses := map[int]int{}
	tokens := 0
	var unexpected []string // the body of each answer neither 200, 402 nor 429
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 503 overloaded says "retry shortly": a loaded machine can run
			// a call past the mesh's 1 s bound, and a client retries, as the
			// API asks. What is asserted is the budget, not the latency.
			r := do(t, ctx, "POST", url, key, body)
			for attempt := 1; r.status == 503 && attempt < 5; attempt++ {
				r = do(t, ctx, "POST", url, key, body)
			}
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			if r.status == 200 {
				_, _, total, _, _ := usageOf(t, r.json(t))
				tokens += total
			} else {
				r.errorOf(t)
				if r.status != 402 && r.status != 429 {
					unexpected = append(unexpected, string(r.body))
				}
			}
		}()
	}
	wg.Wait()
	if statuses[200] != 50 || statuses[200]+statuses[402]+statuses[429] != 200 {
		t.Fatalf("statuses %v; want exactly 50 × 200 and the rest 402/429 (others: %q)", statuses, unexpected)
	}
	a, err := usersv1.NewUsersServiceClient(p.Dial("users")).GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: acct}, grpc.WaitForReady(true))
	if err != nil || a.Account.BalanceMicros != 0 {
		t.Fatalf("balance %v (%v); want 0", a.GetAccount().GetBalanceMicros(), err)
	}
	// The ledger follows the usage events. Each one delivered twice
	// changes nothing: exactly the 50 admitted requests, once each.
	p.WaitConsumed(events.Usage.Group("users"), time.Minute)
	deliverTwice(t, p, "users-1")
	p.WaitConsumed(events.Usage.Group("users"), time.Minute)
	u := do(t, ctx, "GET", p.APIURL+"/v1/usage", key, nil).json(t)["total"].(map[string]any)
	if int(u["requests"].(float64)) != 50 || int(u["total_tokens"].(float64)) != tokens || int64(u["cost_micros"].(float64)) != 50*hold {
		t.Fatalf("ledger %v; want 50 requests, %d tokens, %d micros", u, tokens, 50*hold)
	}
	if n, cost, balance := ledgerOf(t, ledgerDB(t, p), acct); n != 50 || cost != 50*hold || balance != 0 {
		t.Fatalf("in PostgreSQL: %d requests, %d micros, balance %d; want 50, %d and 0", n, cost, balance, 50*hold)
	}
	if d := metric(t, p, "users-1-again", "bulkhead_users_usage_events_total", `result="duplicate"`); d < 100 {
		t.Fatalf("%d duplicates seen by the ledger; want at least each of the 51 events (the calibration's too) produced again, and all redelivered", d)
	}
}
