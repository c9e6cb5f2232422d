package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// The openai engine against a real OpenAI-compatible upstream: this very
// platform's public API. A model "relay" served by the openai engine
// forwards to deepseek-chat upstream; with the same seed the text is the
// same as asking deepseek-chat directly, streamed through.
func TestOpenAIEngine(t *testing.T) {
	port, err := components.QuietPort()
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", port)
	opts := stack.PlatformOptions{Inference: inference.Options{OpenAIBaseURL: "http://" + apiAddr + "/v1"}}
	opts.API.HTTPAddress = apiAddr
	p := stack.StartPlatform(t, opts)
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"

	mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
	if _, err := mc.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: &modelsv1.Model{Name: "relay", Engine: "openai", EngineModel: "deepseek-chat",
		ContextLength: 8192, MaxOutputTokens: 1024, DefaultMaxTokens: 64}}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}

	// No upstream key in Vault yet: the upstream refuses, the client gets a
	// 500 that says what to fix, not a hang.
	r := do(t, ctx, "POST", url, p.Key, chatBody(map[string]any{"model": "relay"}))
	if msg, _, code, _ := r.errorOf(t); r.status != 500 || code != "internal_error" {
		t.Fatalf("without the upstream key: %d %s %s", r.status, code, msg)
	}

	// The key goes into the inference secret; the replicas are replaced
	// (a secret is read at start).
	v, err := p.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.KVv2("secret").Patch(ctx, "bulkhead/inference", map[string]any{"openai_api_key": p.Key}); err != nil {
		t.Fatal(err)
	}
	for i, old := range []string{"inference-1", "inference-2"} {
		p.Services[old].Stop()
		p.RemoveEndpoint(old)
		name := fmt.Sprintf("inference-%d", i+3)
		p.Services[name] = p.StartService("inference", inference.Setup(&opts.Inference), stack.Options{Instance: name})
	}

	body := map[string]any{"max_tokens": 25, "seed": 42}
	direct := content(t, do(t, ctx, "POST", url, p.Key, chatBody(body)).json(t))
	body["model"] = "relay"
	r = do(t, ctx, "POST", url, p.Key, chatBody(body))
	if r.status != 200 {
		t.Fatalf("relay: %d %s", r.status, r.body)
	}
	relayed := r.json(t)
	if got := content(t, relayed); got != direct || relayed["model"] != "relay" {
		t.Fatalf("relay said %q (model %v); deepseek-chat said %q", got, relayed["model"], direct)
	}
	if _, c, _, _, _ := usageOf(t, relayed); c == 0 {
		t.Fatal("no completion tokens from the upstream's usage")
	}
	body["stream"] = true
	if got := streamedText(t, stream(t, ctx, url, p.Key, chatBody(body))); got != direct {
		t.Fatalf("relay streamed %q; want %q", got, direct)
	}
}

// An OpenAI-compatible upstream whose stream breaks after its tenth
// chunk: chat continues the reply through the openai engine, which sends
// what was already said as an assistant prefix (DeepSeek's prefix: true),
// and the client reads one uninterrupted reply, billed as one. The
// upstream is a small independent server in the test binary, so that it
// can be made to fail; it answers a prefix with the rest of its text.
func TestUpstreamStreamContinued(t *testing.T) {
	words := make([]string, 30)
	for i := range words {
		words[i] = fmt.Sprintf(" word%d", i)
	}
	full := strings.Join(words, "")
	var calls atomic.Int64
	var prefixes []string
	var mu sync.Mutex
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
				Prefix  bool   `json:"prefix"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad request", 400)
			return
		}
		n := calls.Add(1)
		start := 0
		if last := body.Messages[len(body.Messages)-1]; last.Role == "assistant" && last.Prefix {
			mu.Lock()
			prefixes = append(prefixes, last.Content)
			mu.Unlock()
			for start < len(words) && strings.HasPrefix(last.Content, strings.Join(words[:start+1], "")) {
				start++
			}
			if strings.Join(words[:start], "") != last.Content {
				http.Error(w, `{"error": {"message": "not my prefix"}}`, 400)
				return
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := start; i < len(words); i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", words[i])
			w.(http.Flusher).Flush()
			if n == 1 && i == 9 {
				panic(http.ErrAbortHandler) // the upstream dies mid-stream
			}
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":20}}\n\ndata: [DONE]\n\n")
	}))
	defer upstream.Close()

	p := stack.StartPlatform(t, stack.PlatformOptions{Inference: inference.Options{OpenAIBaseURL: upstream.URL + "/v1"}})
	ctx := t.Context()
	mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
	if _, err := mc.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: &modelsv1.Model{Name: "upstream", Engine: "openai", EngineModel: "up",
		ContextLength: 8192, MaxOutputTokens: 1024, DefaultMaxTokens: 200}}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	got, err := streamReply(p.APIURL+"/v1/chat/completions", p.Key, chatBody(map[string]any{"model": "upstream", "stream": true,
		"stream_options": map[string]any{"include_usage": true}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.content != full || got.finish != "stop" || got.errorEvent != "" {
		t.Fatalf("reply %q (finish %q, error %s); want %q", got.content, got.finish, got.errorEvent, full)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls.Load() != 2 || len(prefixes) != 1 || prefixes[0] != strings.Join(words[:10], "") {
		t.Fatalf("%d upstream calls, prefixes %q; want the second to continue the first ten words", calls.Load(), prefixes)
	}
	// Billed as one reply: our count of the whole text, not the upstream's
	// count of its second half.
	if c := int(got.usage["completion_tokens"].(float64)); c != tokens.Count(full) {
		t.Fatalf("completion tokens %d; the whole reply has %d", c, tokens.Count(full))
	}
}
