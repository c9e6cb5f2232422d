package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
)

// reply is a chat completion as a client assembles it from a stream.
type reply struct {
	content, reasoning, finish string
	usage                      map[string]any
	errorEvent                 string
	// model is the last chunk's.
	model string
}

// streamReply reads a stream, calling first once its first piece of text
// arrived.
func streamReply(url, key string, body map[string]any, first func()) (reply, error) {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return reply{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var r reply
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content          string `json:"content"`
					ReasoningContent string `json:"reasoning_content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
			Error map[string]any `json:"error"`
			Model string         `json:"model"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return r, err
		}
		if c.Model != "" {
			r.model = c.Model
		}
		if c.Error != nil {
			r.errorEvent = data
		}
		for _, ch := range c.Choices {
			if r.content == "" && r.reasoning == "" && (ch.Delta.Content != "" || ch.Delta.ReasoningContent != "") && first != nil {
				first()
			}
			r.content += ch.Delta.Content
			r.reasoning += ch.Delta.ReasoningContent
			if ch.FinishReason != nil {
				r.finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			r.usage = c.Usage
		}
	}
	if !done {
		return r, fmt.Errorf("stream ended without [DONE] (error event %s)", r.errorEvent)
	}
	return r, sc.Err()
}

// An inference replica killed after the first chunk of 100 concurrent
// streams: every stream completes, its text equal to the uninterrupted
// generation with the same seed, its usage that of one uninterrupted
// reply, billed once. chat continues each broken reply on the surviving
// replica from exactly what it had sent (half of the streams think, so
// the chain of thought is continued too).
func TestStreamsSurviveTheirReplica(t *testing.T) {
	const streams = 100
	p := stack.StartPlatform(t, stack.PlatformOptions{Inference: inference.Options{TokenInterval: 25 * time.Millisecond, MaxConcurrency: 128}})
	url := p.APIURL + "/v1/chat/completions"
	body := func(i int, stream bool) map[string]any {
		model := "deepseek-chat"
		if i%2 == 1 {
			model = "deepseek-v4-flash"
		}
		b := chatBody(map[string]any{"model": model, "max_tokens": 90, "seed": 1000 + i, "stream": stream})
		if stream {
			b["stream_options"] = map[string]any{"include_usage": true}
		}
		// Distinct conversations spread over both replicas.
		b["messages"] = []map[string]any{{"role": "user", "content": fmt.Sprintf("What of the Rays of Light, question %d?", i)}}
		return b
	}
	before := do(t, t.Context(), "GET", p.APIURL+"/v1/usage", p.Key, nil).json(t)["total"].(map[string]any)

	var firsts sync.WaitGroup
	firsts.Add(streams)
	var started atomic.Int64
	got := make([]reply, streams)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			first := func() { once.Do(func() { started.Add(1); firsts.Done() }) }
			got[i], errs[i] = streamReply(url, p.Key, body(i, true), first)
			once.Do(func() { firsts.Done() }) // a stream that failed early
		}()
	}
	firsts.Wait()
	if n := started.Load(); n != streams {
		wg.Wait()
		t.Fatalf("only %d of %d streams started (first error: %v)", n, streams, firstError(errs))
	}
	p.Services["inference-1"].Kill()
	wg.Wait()

	continued := metric(t, p, "chat-1", "bulkhead_chat_continuations_total{", "")
	if continued == 0 {
		t.Fatal("no stream was continued: the kill hit no stream")
	}
	// Billed once: the ledger has each stream once, with the usage its
	// client saw.
	var billed float64
	for i := range streams {
		if errs[i] != nil || got[i].errorEvent != "" {
			t.Fatalf("stream %d: %v %s", i, errs[i], got[i].errorEvent)
		}
		billed += got[i].usage["completion_tokens"].(float64)
	}
	testenv.Eventually(t, 30*time.Second, "the ledger", func() error {
		after := do(t, t.Context(), "GET", p.APIURL+"/v1/usage", p.Key, nil).json(t)["total"].(map[string]any)
		n, c := after["requests"].(float64)-before["requests"].(float64), after["completion_tokens"].(float64)-before["completion_tokens"].(float64)
		return testenv.Until(n == streams && c == billed, "%v requests and %v completion tokens recorded; want %d and %v", n, c, streams, billed)
	})
	// The same requests, uninterrupted (the survivor serves them whole),
	// all at once as the streams were.
	refs := make([]response, streams)
	wg = sync.WaitGroup{}
	for i := range streams {
		wg.Go(func() { refs[i] = do(t, t.Context(), "POST", url, p.Key, body(i, false)) })
	}
	wg.Wait()
	for i := range streams {
		ref := refs[i]
		if ref.status != 200 {
			t.Fatalf("reference %d: %d %s", i, ref.status, ref.body)
		}
		v := ref.json(t)
		msg := v["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
		reasoning, _ := msg["reasoning_content"].(string)
		if got[i].content != msg["content"] || got[i].reasoning != reasoning {
			t.Fatalf("stream %d said %q|%q; uninterrupted %q|%q", i, got[i].reasoning, got[i].content, reasoning, msg["content"])
		}
		refUsage := v["usage"].(map[string]any)
		for _, k := range []string{"prompt_tokens", "completion_tokens", "total_tokens"} {
			if got[i].usage[k] != refUsage[k] {
				t.Fatalf("stream %d usage %v; uninterrupted %v", i, got[i].usage, refUsage)
			}
		}
		if got[i].finish != v["choices"].([]any)[0].(map[string]any)["finish_reason"] {
			t.Fatalf("stream %d finished %q; uninterrupted %v", i, got[i].finish, v["choices"])
		}
	}
	t.Logf("%d of %d streams continued on the surviving replica; %d completion tokens billed for the streams", continued, streams, int(billed))
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Every replica dies mid-stream: nothing is left to continue the reply
// on, so it ends as DeepSeek ends a generation the system could not
// finish, finish_reason insufficient_system_resource, and what was served
// is billed.
func TestStreamEndsWhenNoReplicaIsLeft(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{Inference: inference.Options{TokenInterval: 25 * time.Millisecond}})
	body := chatBody(map[string]any{"max_tokens": 200, "seed": 4, "stream": true, "stream_options": map[string]any{"include_usage": true}})
	got, err := streamReply(p.APIURL+"/v1/chat/completions", p.Key, body, func() {
		p.Services["inference-1"].Kill()
		p.Services["inference-2"].Kill()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.finish != "insufficient_system_resource" || got.content == "" || got.errorEvent != "" || got.usage == nil {
		t.Fatalf("finish %q, content %q, error %s, usage %v", got.finish, got.content, got.errorEvent, got.usage)
	}
	served := int(got.usage["completion_tokens"].(float64))
	if served == 0 || served >= 200 {
		t.Fatalf("%d completion tokens for a reply cut after its first pieces", served)
	}
	testenv.Eventually(t, 30*time.Second, "the ledger", func() error {
		u := do(t, t.Context(), "GET", p.APIURL+"/v1/usage", p.Key, nil).json(t)["total"].(map[string]any)
		return testenv.Until(int(u["requests"].(float64)) == 1 && int(u["completion_tokens"].(float64)) == served, "usage %v; want 1 request of %d tokens", u, served)
	})
}
