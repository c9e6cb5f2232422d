package e2e_test

import (
	"fmt"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// Prefix-cache affinity and honest cache-hit tokens: the second turn of a
// conversation goes to the inference replica that served the first (ring
// hash on the key chat computes from the conversation's opening) and is
// billed with exactly the tokens of the first turn's prompt that replica
// did not process again (all but the assistant's opening, which the
// second turn replaces with the reply); another account never hits
// another's prefixes. With two replicas, eight conversations all hitting
// by chance would be one in 256.
func TestPrefixCacheAffinity(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"
	_, other := newKey(t, p, &usersv1.CreateAccountRequest{Name: "other", Tier: "standard", BalanceMicros: 1 << 40})
	opening := tokens.Count(tokens.AssistantTurn)
	var hits int
	for i := range 8 {
		msgs := []map[string]any{
			{"role": "system", "content": fmt.Sprintf("You are natural philosopher number %d.", i)},
			{"role": "user", "content": fmt.Sprintf("What becomes of light in prism %d?", i)},
		}
		// Temperature 1: not deterministic, so the response cache is not
		// in the way.
		body := map[string]any{"model": "deepseek-chat", "messages": msgs, "max_tokens": 12, "temperature": 1}
		r := do(t, ctx, "POST", url, p.Key, body)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		first, _, _, hit, _ := usageOf(t, v)
		if hit != 0 {
			t.Fatalf("conversation %d, turn 1: %d cache-hit tokens for a prompt never seen", i, hit)
		}
		body["messages"] = append(msgs, map[string]any{"role": "assistant", "content": content(t, v)}, map[string]any{"role": "user", "content": "And then?"})
		r = do(t, ctx, "POST", url, p.Key, body)
		second, _, _, hit, miss := usageOf(t, r.json(t))
		if want := first - opening; hit != want || miss != second-want {
			t.Fatalf("conversation %d, turn 2: %d hit, %d miss of %d; want %d hit (turn 1's %d prompt tokens less the assistant's opening)", i, hit, miss, second, want, first)
		}
		hits += hit
		// The same conversation under another account: its own prompt.
		r = do(t, ctx, "POST", url, other, body)
		if _, _, _, hit, _ := usageOf(t, r.json(t)); hit != 0 {
			t.Fatalf("conversation %d under another account: %d cache-hit tokens of the first account's prefix", i, hit)
		}
	}
	// The replicas' metrics say the same.
	var metered float64
	for _, inst := range []string{"inference-1", "inference-2"} {
		metered += sum(scrape(t, p, inst), "bulkhead_inference_prefix_cache_tokens", `result="hit"`)
	}
	if int(metered) != hits {
		t.Fatalf("the replicas metered %v prefix-cache hit tokens; the usage billed %d", metered, hits)
	}
}
