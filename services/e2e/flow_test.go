package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

func chatBody(extra map[string]any) map[string]any {
	b := map[string]any{
		"model":    "deepseek-chat",
		"messages": []map[string]any{{"role": "system", "content": "You are a natural philosopher."}, {"role": "user", "content": "What becomes of light in a prism?"}},
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func usageOf(t *testing.T, v map[string]any) (prompt, completion, total, hit, miss int) {
	t.Helper()
	u, ok := v["usage"].(map[string]any)
	if !ok {
		t.Fatalf("no usage in %v", v)
	}
	n := func(k string) int {
		f, ok := u[k].(float64)
		if !ok {
			t.Fatalf("usage.%s missing in %v", k, u)
		}
		return int(f)
	}
	prompt, completion, total, hit, miss = n("prompt_tokens"), n("completion_tokens"), n("total_tokens"), n("prompt_cache_hit_tokens"), n("prompt_cache_miss_tokens")
	if hit+miss != prompt || prompt+completion != total || prompt == 0 {
		t.Fatalf("usage does not add up: %v", u)
	}
	return
}

func TestChatCompletionFlow(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	url := p.APIURL + "/v1/chat/completions"
	ctx := t.Context()

	t.Run("non-streaming", func(t *testing.T) {
		r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"max_tokens": 30, "seed": 5}))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		if v["object"] != "chat.completion" || !strings.HasPrefix(v["id"].(string), "chatcmpl-") || v["model"] != "deepseek-chat" {
			t.Fatalf("completion %s", r.body)
		}
		ch := v["choices"].([]any)[0].(map[string]any)
		msg := ch["message"].(map[string]any)
		if msg["role"] != "assistant" || msg["content"] == "" || (ch["finish_reason"] != "stop" && ch["finish_reason"] != "length") {
			t.Fatalf("choice %v", ch)
		}
		if _, c, _, _, _ := usageOf(t, v); c == 0 || c > 30 {
			t.Fatalf("completion tokens %d", c)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Error("no x-request-id on the response")
		}
	})

	t.Run("streaming with usage", func(t *testing.T) {
		s := stream(t, ctx, url, p.Key, chatBody(map[string]any{"max_tokens": 30, "seed": 5, "stream": true, "stream_options": map[string]any{"include_usage": true}}))
		if s.status != 200 || !strings.HasPrefix(s.header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%d %v %v", s.status, s.header, s.data)
		}
		if n := len(s.data); n < 5 || s.data[n-1] != "[DONE]" {
			t.Fatalf("stream %v", s.data)
		}
		var id, text string
		var finish string
		var usage map[string]any
		for i, d := range s.data[:len(s.data)-1] {
			var c map[string]any
			if err := json.Unmarshal([]byte(d), &c); err != nil {
				t.Fatalf("chunk %d: %v: %s", i, err, d)
			}
			if c["object"] != "chat.completion.chunk" {
				t.Fatalf("chunk %d object %v", i, c["object"])
			}
			if id == "" {
				id = c["id"].(string)
			} else if c["id"] != id {
				t.Fatalf("chunk ids differ: %v vs %s", c["id"], id)
			}
			choices := c["choices"].([]any)
			if i == len(s.data)-2 {
				// The usage chunk: no choices, usage set.
				if len(choices) != 0 || c["usage"] == nil {
					t.Fatalf("last chunk before [DONE] is not the usage chunk: %s", d)
				}
				usage = c
				continue
			}
			if c["usage"] != nil {
				t.Fatalf("usage on a content chunk: %s", d)
			}
			ch := choices[0].(map[string]any)
			delta := ch["delta"].(map[string]any)
			if i == 0 && delta["role"] != "assistant" {
				t.Fatalf("first chunk without the role: %s", d)
			}
			if s, ok := delta["content"].(string); ok {
				text += s
			}
			if fr, ok := ch["finish_reason"].(string); ok {
				finish = fr
			}
		}
		if text == "" || (finish != "stop" && finish != "length") {
			t.Fatalf("text %q finish %q", text, finish)
		}
		// Same seed, same request: the same text as the non-streaming call.
		r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"max_tokens": 30, "seed": 5}))
		if got := r.json(t)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != text {
			t.Fatalf("streamed %q; non-streamed %q", text, got)
		}
		_, c, _, _, _ := usageOf(t, usage)
		if c == 0 {
			t.Fatal("no completion tokens in the usage chunk")
		}
	})

	t.Run("conversation turns recorded", func(t *testing.T) {
		db, err := pgx.Connect(ctx, p.Postgres.DatabaseDSN("chat"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(ctx)
		testenv.Eventually(t, 20*time.Second, "the conversation turns recorded", func() error {
			var convs, msgs int
			err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages WHERE role = 'assistant' AND content <> '')`).Scan(&convs, &msgs)
			if err != nil {
				return err
			}
			// Three completions so far, all opening the same conversation.
			return testenv.Until(convs == 1 && msgs == 3, "%d conversations, %d replies recorded; want 1 and 3", convs, msgs)
		})
	})

	t.Run("reference metrics", func(t *testing.T) {
		do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"temperature": 0, "max_tokens": 5}))
		for instance, names := range map[string][]string{
			"api-1":       {"bulkhead_api_request_duration_seconds_bucket", "bulkhead_api_requests_total", "process_cpu_seconds_total", "go_memstats_heap_alloc_bytes"},
			"chat-1":      {"bulkhead_chat_cache_total", "bulkhead_chat_completions_total", "rpc_server_call_duration_seconds_bucket", "db_client_connections"},
			"users-1":     {"bulkhead_users_admissions_total", "bulkhead_users_active_requests"},
			"inference-*": {"bulkhead_inference_requests_total", "bulkhead_inference_time_to_first_token_seconds_bucket"},
		} {
			var e string
			if instance == "inference-*" {
				e = scrape(t, p, "inference-1") + scrape(t, p, "inference-2")
			} else {
				e = scrape(t, p, instance)
			}
			for _, n := range names {
				if !strings.Contains(e, "\n"+n) {
					t.Errorf("%s: no metric %s", instance, n)
				}
			}
		}
	})

	t.Run("streaming without usage", func(t *testing.T) {
		s := stream(t, ctx, url, p.Key, chatBody(map[string]any{"max_tokens": 10, "stream": true}))
		for _, d := range s.data[:len(s.data)-1] {
			var c map[string]any
			json.Unmarshal([]byte(d), &c)
			if c["usage"] != nil || len(c["choices"].([]any)) != 1 {
				t.Fatalf("chunk %s", d)
			}
		}
	})
}
