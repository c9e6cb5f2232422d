package e2e_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/api"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

func content(t *testing.T, v map[string]any) string {
	t.Helper()
	return v["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
}

// The response cache: deterministic requests (temperature 0, or the cache
// opt-in) are answered from it with identical content, the prompt counted
// as cache hit; a new model version invalidates it; tenants do not share.
func TestResponseCache(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"
	body := chatBody(map[string]any{"temperature": 0, "max_tokens": 20})

	// cached says what the response cache did (X-Bulkhead-Cache): hit,
	// miss, or "" when the request was not looked up.
	cached := func(r response, want string) map[string]any {
		t.Helper()
		if got := r.header.Get(api.CacheHeader); got != want {
			t.Fatalf("%s %q; want %q (%d %s)", api.CacheHeader, got, want, r.status, r.body)
		}
		return r.json(t)
	}
	first := cached(do(t, ctx, "POST", url, p.Key, body), "miss")
	if _, _, _, hit, _ := usageOf(t, first); hit != 0 {
		t.Fatalf("first request counted %d cache-hit tokens", hit)
	}
	second := cached(do(t, ctx, "POST", url, p.Key, body), "hit")
	prompt, c1, _, hit, miss := usageOf(t, second)
	if content(t, second) != content(t, first) || hit != prompt || miss != 0 {
		t.Fatalf("second: %q (hit %d, miss %d of %d); want %q all hit", content(t, second), hit, miss, prompt, content(t, first))
	}
	if _, c0, _, _, _ := usageOf(t, first); c0 != c1 {
		t.Fatalf("completion tokens %d then %d", c0, c1)
	}
	// Streamed from the cache: the same text.
	s := stream(t, ctx, url, p.Key, map[string]any{"model": body["model"], "messages": body["messages"], "temperature": 0, "max_tokens": 20, "stream": true})
	if got := streamedText(t, s); got != content(t, first) {
		t.Fatalf("streamed from the cache %q; want %q", got, content(t, first))
	}

	// Another tenant does not get this tenant's entry.
	_, other := newKey(t, p, accountRequest("other"))
	if _, _, _, hit, _ := usageOf(t, cached(do(t, ctx, "POST", url, other, body), "miss")); hit != 0 {
		t.Fatal("another account hit this account's cache entry")
	}
	// Non-deterministic requests are not cached unless they opt in.
	warm := chatBody(map[string]any{"temperature": 0.9, "seed": 3, "max_tokens": 10})
	cached(do(t, ctx, "POST", url, p.Key, warm), "")
	cached(do(t, ctx, "POST", url, p.Key, warm), "")
	warm["cache"] = true
	cached(do(t, ctx, "POST", url, p.Key, warm), "miss")
	cached(do(t, ctx, "POST", url, p.Key, warm), "hit")

	// A new version of the model invalidates its entries.
	mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
	m, err := mc.GetModel(ctx, &modelsv1.GetModelRequest{Name: "deepseek-chat"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: m.Model}); err != nil {
		t.Fatal(err)
	}
	cached(do(t, ctx, "POST", url, p.Key, body), "miss")
}

func streamedText(t *testing.T, s sse) string {
	t.Helper()
	var out string
	for _, d := range s.data {
		if d == "[DONE]" {
			break
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string }
			}
		}
		if err := jsonUnmarshal(d, &c); err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			out += ch.Delta.Content
		}
	}
	return out
}

// Keys (owner and admin), models, usage.
func TestKeysModelsUsage(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()

	// Models.
	r := do(t, ctx, "GET", p.APIURL+"/v1/models", p.Key, nil)
	v := r.json(t)
	data := v["data"].([]any)
	if r.status != 200 || v["object"] != "list" || len(data) != 4 || data[0].(map[string]any)["id"] != "deepseek-chat" || data[0].(map[string]any)["object"] != "model" {
		t.Fatalf("models %d %s", r.status, r.body)
	}
	if r := do(t, ctx, "GET", p.APIURL+"/v1/models/deepseek-reasoner", p.Key, nil); r.status != 200 || r.json(t)["id"] != "deepseek-reasoner" {
		t.Fatalf("model %d %s", r.status, r.body)
	}

	// The owner creates a key, sees it listed without its secret, uses it,
	// revokes it: refused within a second.
	r = do(t, ctx, "POST", p.APIURL+"/v1/keys", p.Key, map[string]any{"name": "laptop"})
	if r.status != 201 {
		t.Fatalf("create key %d %s", r.status, r.body)
	}
	k := r.json(t)
	secret, id := k["secret"].(string), k["id"].(string)
	list := do(t, ctx, "GET", p.APIURL+"/v1/keys", p.Key, nil)
	if list.status != 200 || len(list.json(t)["data"].([]any)) != 3 || jsonContains(list.body, secret) {
		t.Fatalf("list %d %s", list.status, list.body)
	}
	if r := do(t, ctx, "GET", p.APIURL+"/v1/models", secret, nil); r.status != 200 {
		t.Fatalf("new key refused: %d %s", r.status, r.body)
	}
	if r := do(t, ctx, "POST", p.APIURL+"/v1/keys", p.Key, map[string]any{"role": "admin"}); r.status != 403 {
		t.Fatalf("a user key created an admin key: %d %s", r.status, r.body)
	}
	if r := do(t, ctx, "DELETE", p.APIURL+"/v1/keys/"+id, p.Key, nil); r.status != 200 || r.json(t)["revoked_at"] == nil {
		t.Fatalf("revoke %d %s", r.status, r.body)
	}
	testenv.Eventually(t, 10*time.Second, "the revoked key refused", func() error {
		r := do(t, ctx, "GET", p.APIURL+"/v1/models", secret, nil)
		return testenv.Until(r.status == 401, "answered %d %s", r.status, r.body)
	})

	// Another account's key cannot be revoked by a user; an admin can.
	otherAcct, otherKey := newKey(t, p, accountRequest("other"))
	otherList := do(t, ctx, "GET", p.APIURL+"/v1/keys", otherKey, nil).json(t)["data"].([]any)
	otherID := otherList[0].(map[string]any)["id"].(string)
	if r := do(t, ctx, "DELETE", p.APIURL+"/v1/keys/"+otherID, p.Key, nil); r.status != 404 {
		t.Fatalf("revoking another account's key as a user: %d %s", r.status, r.body)
	}
	if r := do(t, ctx, "GET", p.APIURL+"/v1/keys?account_id="+otherAcct, p.AdminKey, nil); r.status != 200 || len(r.json(t)["data"].([]any)) != 1 {
		t.Fatalf("admin list of another account: %d %s", r.status, r.body)
	}
	if r := do(t, ctx, "DELETE", p.APIURL+"/v1/keys/"+otherID, p.AdminKey, nil); r.status != 200 {
		t.Fatalf("admin revoke %d %s", r.status, r.body)
	}

	// Usage adds up what was served.
	var prompt, completion int
	for i := range 3 {
		v := do(t, ctx, "POST", p.APIURL+"/v1/chat/completions", p.Key, chatBody(map[string]any{"max_tokens": 10, "seed": i})).json(t)
		pr, c, _, _, _ := usageOf(t, v)
		prompt += pr
		completion += c
	}
	testenv.Eventually(t, 30*time.Second, "the requests in the ledger", func() error {
		u := do(t, ctx, "GET", p.APIURL+"/v1/usage", p.Key, nil)
		total, _ := u.json(t)["total"].(map[string]any)
		return testenv.Until(u.status == 200 && int(total["requests"].(float64)) == 3 && int(total["prompt_tokens"].(float64)) == prompt && int(total["completion_tokens"].(float64)) == completion,
			"usage %d %s; want 3 requests, %d prompt and %d completion tokens", u.status, u.body, prompt, completion)
	})
	if r := do(t, ctx, "GET", p.APIURL+"/v1/usage?start_time=soon", p.Key, nil); r.status != 422 {
		t.Fatalf("bad start_time: %d %s", r.status, r.body)
	}
}
