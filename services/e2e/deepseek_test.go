package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/api"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

func message(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	ch, ok := v["choices"].([]any)
	if !ok || len(ch) != 1 {
		t.Fatalf("choices: %v", v)
	}
	return ch[0].(map[string]any)["message"].(map[string]any)
}

func reasoningTokens(t *testing.T, v map[string]any) int {
	t.Helper()
	d, ok := v["usage"].(map[string]any)["completion_tokens_details"].(map[string]any)
	if !ok {
		t.Fatalf("usage without completion_tokens_details: %v", v["usage"])
	}
	return int(d["reasoning_tokens"].(float64))
}

// The DeepSeek V4 surface: the models, thinking mode (reasoning_content
// in the message and the stream, reasoning tokens in the usage), the
// deprecated names, and GET /user/balance.
func TestDeepSeekV4Surface(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"

	t.Run("models", func(t *testing.T) {
		data := do(t, ctx, "GET", p.APIURL+"/models", p.Key, nil).json(t)["data"].([]any)
		var ids []string
		for _, m := range data {
			ids = append(ids, m.(map[string]any)["id"].(string))
		}
		if got := strings.Join(ids, ","); got != "deepseek-chat,deepseek-reasoner,deepseek-v4-flash,deepseek-v4-pro" {
			t.Fatalf("models %s", got)
		}
	})

	t.Run("V4 thinks by default", func(t *testing.T) {
		r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-v4-flash", "max_tokens": 400, "seed": 5}))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		m := message(t, v)
		reasoning, _ := m["reasoning_content"].(string)
		_, completion, _, _, _ := usageOf(t, v)
		if reasoning == "" || m["content"] == "" || reasoningTokens(t, v) == 0 || reasoningTokens(t, v) >= completion {
			t.Fatalf("thinking reply: reasoning %q, content %q, %d of %d completion tokens reasoning", reasoning, m["content"], reasoningTokens(t, v), completion)
		}

		// Thinking ignores temperature, so temperature 0 does not make a
		// thinking reply deterministic: it is never answered from the
		// response cache.
		for range 2 {
			r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-v4-flash", "max_tokens": 300, "temperature": 0}))
			if c := r.header.Get(api.CacheHeader); c != "" {
				t.Fatalf("a thinking reply went to the response cache (%s %q): %s", api.CacheHeader, c, r.body)
			}
		}

		// Disabled, the answer is the same (same seed) without the thought.
		r = do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-v4-flash", "max_tokens": 400, "seed": 5, "thinking": map[string]any{"type": "disabled"}}))
		plain := r.json(t)
		pm := message(t, plain)
		if pm["reasoning_content"] != nil || pm["content"] != m["content"] || reasoningTokens(t, plain) != 0 {
			t.Fatalf("thinking disabled: %v", pm)
		}
	})

	t.Run("deprecated names", func(t *testing.T) {
		chat := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-chat", "max_tokens": 50, "seed": 5})).json(t)
		if message(t, chat)["reasoning_content"] != nil {
			t.Fatalf("deepseek-chat thought: %v", message(t, chat))
		}
		reasoner := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-reasoner", "max_tokens": 300, "seed": 5})).json(t)
		if message(t, reasoner)["reasoning_content"] == nil {
			t.Fatalf("deepseek-reasoner did not think: %v", message(t, reasoner))
		}
		// Thinking can be turned on for deepseek-chat, as DeepSeek allows.
		on := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "deepseek-chat", "max_tokens": 300, "seed": 5, "thinking": map[string]any{"type": "enabled"}, "reasoning_effort": "low"})).json(t)
		if message(t, on)["reasoning_content"] == nil {
			t.Fatalf("deepseek-chat with thinking enabled: %v", message(t, on))
		}
	})

	t.Run("thinking streams reasoning first", func(t *testing.T) {
		r, err := streamReply(url, p.Key, chatBody(map[string]any{"model": "deepseek-v4-pro", "max_tokens": 300, "stream": true,
			"stream_options": map[string]any{"include_usage": true}}), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := r.usage["completion_tokens_details"].(map[string]any)
		if r.reasoning == "" || r.content == "" || d == nil || d["reasoning_tokens"].(float64) == 0 {
			t.Fatalf("streamed thinking: reasoning %q, content %q, usage %v", r.reasoning, r.content, r.usage)
		}
		s := stream(t, ctx, url, p.Key, chatBody(map[string]any{"model": "deepseek-v4-pro", "max_tokens": 300, "stream": true}))
		// Every reasoning delta comes before the first content delta.
		sawContent := false
		for _, data := range s.data[1:] {
			if data == "[DONE]" {
				break
			}
			var c struct {
				Choices []struct {
					Delta map[string]any `json:"delta"`
				} `json:"choices"`
			}
			if err := jsonUnmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.Choices {
				if _, ok := ch.Delta["reasoning_content"]; ok && sawContent {
					t.Fatalf("reasoning after content: %s", data)
				}
				if s, _ := ch.Delta["content"].(string); s != "" {
					sawContent = true
				}
			}
		}
	})

	t.Run("chat prefix completion", func(t *testing.T) {
		msgs := []map[string]any{{"role": "user", "content": "What becomes of light in a prism?"},
			{"role": "assistant", "content": "The Rays of Light", "prefix": true}}
		r := do(t, ctx, "POST", p.APIURL+"/beta/chat/completions", p.Key, map[string]any{"model": "deepseek-chat", "messages": msgs, "max_tokens": 30, "seed": 3})
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		got := message(t, r.json(t))["content"].(string)
		// The reply carries on the prefix (the next word, spaced), without
		// repeating it.
		if len(got) < 3 || got[0] != ' ' && !strings.ContainsRune(".,;:", rune(got[0])) || strings.HasPrefix(got, "The Rays") {
			t.Fatalf("continued %q as %q", "The Rays of Light", got)
		}
		msgs[1]["prefix"] = nil
		msgs = append(msgs, map[string]any{"role": "user", "content": "go on"})
		msgs[0]["prefix"] = true
		r = do(t, ctx, "POST", url, p.Key, map[string]any{"model": "deepseek-chat", "messages": msgs})
		if _, _, _, param := r.errorOf(t); r.status != 422 || param != "messages[0].prefix" {
			t.Fatalf("prefix on a user message: %d %s", r.status, r.body)
		}
	})

	t.Run("FIM completion", func(t *testing.T) {
		fim := map[string]any{"model": "deepseek-v4-flash", "prompt": "The Rays of Light", "suffix": " Colours of the Prism.", "max_tokens": 60, "seed": 8}
		r := do(t, ctx, "POST", p.APIURL+"/beta/completions", p.Key, fim)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		ch := v["choices"].([]any)[0].(map[string]any)
		text, _ := ch["text"].(string)
		prompt, completion, _, _, _ := usageOf(t, v)
		// The prompt is counted as it is (no chat template); FIM does not
		// think, even on a model that thinks by default.
		if v["object"] != "text_completion" || !strings.HasPrefix(v["id"].(string), "cmpl-") || text == "" || ch["finish_reason"] == nil ||
			prompt > 12 || completion == 0 || reasoningTokens(t, v) != 0 {
			t.Fatalf("FIM answer %s", r.body)
		}
		// Streamed, the same text (same seed) in text_completion chunks.
		fim["stream"] = true
		s := stream(t, ctx, p.APIURL+"/beta/completions", p.Key, fim)
		var streamed string
		for _, d := range s.data {
			if d == "[DONE]" {
				break
			}
			var c struct {
				Object  string `json:"object"`
				Choices []struct {
					Text string `json:"text"`
				} `json:"choices"`
			}
			if err := jsonUnmarshal(d, &c); err != nil || c.Object != "text_completion" {
				t.Fatalf("chunk %s (%v)", d, err)
			}
			for _, x := range c.Choices {
				streamed += x.Text
			}
		}
		if streamed != text {
			t.Fatalf("streamed %q; not streamed %q", streamed, text)
		}
		// echo puts the prompt first; logprobs beyond 20 are refused,
		// named (TestLogprobs has the rest).
		delete(fim, "stream")
		fim["echo"] = true
		echoed := do(t, ctx, "POST", p.APIURL+"/beta/completions", p.Key, fim).json(t)["choices"].([]any)[0].(map[string]any)["text"]
		if echoed != "The Rays of Light"+text {
			t.Fatalf("echo: %q", echoed)
		}
		fim["logprobs"] = 21
		r = do(t, ctx, "POST", p.APIURL+"/beta/completions", p.Key, fim)
		if _, _, _, param := r.errorOf(t); r.status != 422 || param != "logprobs" {
			t.Fatalf("logprobs: %d %s", r.status, r.body)
		}
		r = do(t, ctx, "POST", p.APIURL+"/beta/completions", p.Key, map[string]any{"model": "deepseek-v4-flash", "prompt": 7})
		if _, _, _, param := r.errorOf(t); r.status != 422 || param != "prompt" {
			t.Fatalf("prompt 7: %d %s", r.status, r.body)
		}
	})

	t.Run("bad thinking fields", func(t *testing.T) {
		r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"thinking": map[string]any{"type": "sometimes"}}))
		if _, _, _, param := r.errorOf(t); r.status != 422 || param != "thinking.type" {
			t.Fatalf("thinking.type sometimes: %d %s", r.status, r.body)
		}
		r = do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"reasoning_effort": "extreme"}))
		if _, _, _, param := r.errorOf(t); r.status != 422 || param != "reasoning_effort" {
			t.Fatalf("reasoning_effort extreme: %d %s", r.status, r.body)
		}
		// A model without a thinking mode refuses it, naming the field.
		mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
		if _, err := mc.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: &modelsv1.Model{Name: "plain", Engine: "builtin", EngineModel: "opticks-3gram",
			ContextLength: 4096, MaxOutputTokens: 512, DefaultMaxTokens: 64}}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		r = do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "plain", "thinking": map[string]any{"type": "enabled"}}))
		if msg, _, _, param := r.errorOf(t); r.status != 422 || param != "thinking" || !strings.Contains(msg, "no thinking mode") {
			t.Fatalf("thinking on a model without it: %d %s", r.status, r.body)
		}
	})

	t.Run("fields that change the reply", func(t *testing.T) {
		// Honoured: the penalties change what the builtin model says.
		base := map[string]any{"max_tokens": 120, "temperature": 0}
		plain := content(t, do(t, ctx, "POST", url, p.Key, chatBody(base)).json(t))
		base["frequency_penalty"] = 1.5
		if penalised := content(t, do(t, ctx, "POST", url, p.Key, chatBody(base)).json(t)); penalised == plain {
			t.Fatalf("frequency_penalty 1.5 changed nothing: %q", plain)
		}
		// Accepted because they change nothing; unknown fields are ignored.
		for _, extra := range []map[string]any{
			{"logprobs": false}, {"top_logprobs": 0}, {"logit_bias": map[string]any{}}, {"some_future_field": 1},
			{"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "f"}}}, "tool_choice": "none"},
		} {
			if r := do(t, ctx, "POST", url, p.Key, chatBody(extra)); r.status != 200 {
				t.Errorf("%v: %d %s", extra, r.status, r.body)
			}
		}
		// json_object always answers valid JSON, or says why it cannot.
		r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"response_format": map[string]any{"type": "json_object"}, "max_tokens": 40}))
		var obj map[string]any
		if r.status != 200 || jsonUnmarshal(content(t, r.json(t)), &obj) != nil {
			t.Fatalf("json_object: %d %s", r.status, r.body)
		}
		r = do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"response_format": map[string]any{"type": "json_object"}, "max_tokens": 3}))
		if msg, _, _, param := r.errorOf(t); r.status != 422 || param != "max_tokens" || !strings.Contains(msg, "JSON object") {
			t.Fatalf("json_object in 3 tokens: %d %s", r.status, r.body)
		}
		// Refused, naming the field, rather than silently not honoured.
		for field, extra := range map[string]map[string]any{
			"logit_bias": {"logit_bias": map[string]any{"1234": 5}},
			"tools":      {"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "f"}}}},
			"n":          {"n": 2},
		} {
			r := do(t, ctx, "POST", url, p.Key, chatBody(extra))
			if _, _, _, param := r.errorOf(t); r.status != 422 || param != field {
				t.Errorf("%v: %d %s; want 422 naming %s", extra, r.status, r.body, field)
			}
		}
	})

	t.Run("balance", func(t *testing.T) {
		uc := usersv1.NewUsersServiceClient(p.Dial("users"))
		a, err := uc.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: p.Account})
		if err != nil {
			t.Fatal(err)
		}
		want := a.GetAccount().GetBalanceMicros() / 10_000 // cents
		for _, path := range []string{"/user/balance", "/v1/user/balance"} {
			r := do(t, ctx, "GET", p.APIURL+path, p.Key, nil)
			v := r.json(t)
			infos, _ := v["balance_infos"].([]any)
			if r.status != 200 || v["is_available"] != true || len(infos) != 1 {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			info := infos[0].(map[string]any)
			total := info["total_balance"].(string)
			if info["currency"] != "USD" || total != info["topped_up_balance"] || info["granted_balance"] != "0.00" ||
				total != fmt.Sprintf("%d.%02d", want/100, want%100) {
				t.Fatalf("%s: %v; want %d.%02d USD", path, info, want/100, want%100)
			}
		}
		if r := do(t, ctx, "GET", p.APIURL+"/user/balance", "sk-wrong", nil); r.status != 401 {
			t.Fatalf("balance without a valid key: %d", r.status)
		}
	})
}
