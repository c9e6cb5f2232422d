package e2e_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
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
