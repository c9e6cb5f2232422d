package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
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
// can be made to fail (fakeUpstream); it answers a prefix with the rest
// of its text.
func TestUpstreamStreamContinued(t *testing.T) {
	upstream := upstreamtest.New(t, "up", 30)
	upstream.CutAfter.Store(10)
	upstream.Set("cut")
	full := upstream.Full()
	p := stack.StartPlatform(t, stack.PlatformOptions{Inference: inference.Options{OpenAIBaseURL: upstream.URL()}})
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
	if prefixes := upstream.Prefixes(); upstream.Calls() != 2 || len(prefixes) != 1 || prefixes[0] != strings.Join(upstream.Words[:10], "") {
		t.Fatalf("%d upstream calls, prefixes %q; want the second to continue the first ten words", upstream.Calls(), prefixes)
	}
	// Billed as one reply: our count of the whole text, not the upstream's
	// count of its second half.
	if c := int(got.usage["completion_tokens"].(float64)); c != tokens.Count(full) {
		t.Fatalf("completion tokens %d; the whole reply has %d", c, tokens.Count(full))
	}
}
